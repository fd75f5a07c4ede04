package main

import (
	"bufio"
	"os"
	"time"

	"github.com/gorilla/websocket"
)

type idleConfig struct {
	url   string
	conns int
	hold  time.Duration
}

// runIdle opens cfg.conns connections and holds them while the harness reads
// the server's memory. It reports the time to open them all, waits for a line
// on stdin (or cfg.hold), then proves a sample of them still echo before it
// closes them.
func runIdle(cfg idleConfig) {
	d := newDialer(32, false)
	d.ReadBufferSize = 1024 // 10,000 connections: keep the generator small too
	d.WriteBufferSize = 1024
	t0 := nowNS()
	conns, _, failed, err := dialAll(d, cfg.url, cfg.conns, 64)
	openSecs := time.Duration(nowNS() - t0).Seconds()
	if failed > 0 {
		closeAll(conns)
		fatalf("%d of %d connections failed to open: %v", failed, cfg.conns, err)
	}
	emit(map[string]any{"event": "opened", "conns": cfg.conns, "open_seconds": openSecs})

	released := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n')
		close(released)
	}()
	select {
	case <-released:
	case <-time.After(cfg.hold):
	}

	// Every 100th connection must still answer an echo: the server held them.
	errors := 0
	var firstErr error
	payload := []byte("still here")
	buf := make([]byte, 64)
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < len(conns); i += 100 {
		c := conns[i]
		c.SetReadDeadline(deadline)
		c.SetWriteDeadline(deadline)
		err := c.WriteMessage(websocket.TextMessage, payload)
		var n int
		if err == nil {
			_, buf, n, err = readMessage(c, buf)
		}
		if err == nil && string(buf[:n]) != string(payload) {
			err = errMismatch
		}
		if err != nil {
			errors++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	closeAll(conns)
	out := map[string]any{
		"event":        "result",
		"mode":         "idle",
		"conns":        cfg.conns,
		"open_seconds": openSecs,
		"conns_per_s":  float64(cfg.conns) / openSecs,
		"errors":       errors,
	}
	if firstErr != nil {
		out["error"] = firstErr.Error()
	}
	emit(out)
}
