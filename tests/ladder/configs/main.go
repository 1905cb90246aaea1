package main

import ("net/http"; "time")

func main() {
	client := &http.Client{Transport: &http.Transport{
		IdleConnTimeout: 90 * time.Second,
	}}
	srv := &http.Server{
		Addr:        ":8080",
		ReadTimeout: 5 * time.Second,
		IdleTimeout: 2*time.Minute,
	}
	_ = client
	srv.ListenAndServe()
}
