"""The kernel world: catalogue scenarios on the real Linux TCP stack in network namespaces.

netns (topology), nft (faults at the router), forward (user-space half of the router: delay), capture (pcap at
R and segment events), observe (sock_diag state recording), agent (socket steps inside a host namespace),
executor (a scenario Script -> events.Run with world="lab"), conform (lab vs model), demos (kernel facts).
"""
