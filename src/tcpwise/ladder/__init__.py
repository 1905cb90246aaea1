"""ladder: find the idle-timeout inversions that cause intermittent 502s and resets, and reproduce them.

* :mod:`tcpwise.ladder.path` builds a path of hops from a TOML/YAML file, ``--hop`` specs and real configs
  (:mod:`tcpwise.ladder.parsers`: nginx with includes, HAProxy, Envoy, gunicorn, uvicorn, Hypercorn, Node, Go,
  sysctl);
* :mod:`tcpwise.ladder.presets` is the defaults table, each value with its source;
* :mod:`tcpwise.ladder.rules` judges it (:func:`~tcpwise.ladder.rules.analyze`);
* the ``keepalive-race`` scenario (:mod:`tcpwise.scenarios.keepalive_race`) reproduces a finding in the model,
  :mod:`tcpwise.ladder.lab_race` on real nginx/HAProxy in lab namespaces.
"""
