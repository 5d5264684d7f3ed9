package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestRelayTCP: a megabyte sent through the relay to an echo server
// comes back intact, no sooner than one round trip, and is counted.
func TestRelayTCP(t *testing.T) {
	var wg sync.WaitGroup
	defer wg.Wait() // last: after the listener and the relay close
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
			})
		}
	})
	const rtt = 60 * time.Millisecond
	r, err := newRelay(ln.Addr().String(), rtt, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 1<<20)
	rand.Read(msg)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
		errc <- err
	}()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	first := make([]byte, 1)
	if _, err := io.ReadFull(c, first); err != nil {
		t.Fatal(err)
	}
	firstAt := time.Since(start)
	rest, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	got := append(first, rest...)
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo through the relay: %d bytes back, want the %d sent, same bytes", len(got), len(msg))
	}
	if firstAt < rtt {
		t.Errorf("first byte back after %v; the relay should add at least the round trip %v", firstAt, rtt)
	}
	st := r.stats()
	if st.TCPConns != 1 || st.TCPUp != int64(len(msg)) || st.TCPDown != int64(len(msg)) {
		t.Errorf("counters %+v; want 1 connection, %d bytes each way", st, len(msg))
	}
	if err := r.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

// TestRelayUDP: datagrams from two clients reach an echo server through
// their own upstream sockets and come back intact, no sooner than one
// round trip.
func TestRelayUDP(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	peers := make(chan string, 100)
	go func() {
		b := make([]byte, 2048)
		for {
			n, a, err := srv.ReadFromUDP(b)
			if err != nil {
				return
			}
			select {
			case peers <- a.String():
			default:
			}
			srv.WriteToUDP(b[:n], a)
		}
	}()
	const rtt = 40 * time.Millisecond
	r, err := newRelay(srv.LocalAddr().String(), rtt, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ra, _ := net.ResolveUDPAddr("udp", r.Addr())

	for client := 0; client < 2; client++ {
		c, err := net.DialUDP("udp", nil, ra)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := 0; i < 5; i++ {
			msg := make([]byte, 1200)
			rand.Read(msg)
			start := time.Now()
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b := make([]byte, 2048)
			n, err := c.Read(b)
			if err != nil {
				t.Fatalf("client %d datagram %d: %v", client, i, err)
			}
			if el := time.Since(start); el < rtt {
				t.Errorf("datagram back after %v; want at least %v", el, rtt)
			}
			if !bytes.Equal(b[:n], msg) {
				t.Fatalf("client %d datagram %d came back changed", client, i)
			}
		}
	}
	seen := map[string]bool{}
	for len(peers) > 0 {
		seen[<-peers] = true
	}
	if len(seen) != 2 {
		t.Errorf("the server saw %d peer addresses; want one upstream socket per client (2)", len(seen))
	}
	st := r.stats()
	if st.UDPClients != 2 || st.UDPUp != 10*1200 || st.UDPDown != 10*1200 || st.Datagrams != 20 {
		t.Errorf("counters %+v; want 2 clients, 20 datagrams, 12000 bytes each way", st)
	}
	if err := r.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

// TestRelayOrder: datagrams sent a few ms apart (each held on its own
// delay line entry) arrive in order, and no sooner than the delay.
func TestRelayOrder(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const rtt = 200 * time.Millisecond
	r, err := newRelay(srv.LocalAddr().String(), rtt, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ra, _ := net.ResolveUDPAddr("udp", r.Addr())
	c, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for i := 0; i < 10; i++ {
		c.Write([]byte{byte(i)})
		time.Sleep(2 * time.Millisecond)
	}
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 16)
	for i := 0; i < 10; i++ {
		n, _, err := srv.ReadFromUDP(b)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 || b[0] != byte(i) {
			t.Fatalf("datagram %d: got %v, want [%d] (order kept)", i, b[:n], i)
		}
	}
	if el := time.Since(start); el < rtt/2 {
		t.Errorf("ten datagrams took %v one way; want at least %v (the delay)", el, rtt/2)
	}
}
