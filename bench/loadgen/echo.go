package main

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

type echoConfig struct {
	url      string
	conns    int
	payload  []byte
	text     bool
	inflight int
	deflate  bool
	warmup   time.Duration
	duration time.Duration
	maxMsgs  int64
}

type connResult struct {
	hist histogram
	msgs int64
	err  error
}

// runEcho drives request/response echo: each connection keeps `inflight`
// messages outstanding (1 = strict request/response) and times each reply
// against the send time of the request it answers (echo keeps order per
// connection, RFC 6455 §5.4 forbids interleaving messages).
func runEcho(cfg echoConfig) {
	d := newDialer(len(cfg.payload), cfg.deflate)
	conns, ext, failed, err := dialAll(d, cfg.url, cfg.conns, 64)
	if failed > 0 {
		fatalf("%d of %d connections failed to open: %v", failed, cfg.conns, err)
	}
	mt := websocket.BinaryMessage
	if cfg.text {
		mt = websocket.TextMessage
	}
	w := newWindow(cfg.maxMsgs)
	results := make([]connResult, len(conns))
	deadline := time.Now().Add(cfg.warmup + cfg.duration + 30*time.Second)
	var wg sync.WaitGroup
	for i, c := range conns {
		c.SetReadDeadline(deadline)
		c.SetWriteDeadline(deadline)
		wg.Add(1)
		go func(c *websocket.Conn, res *connResult) {
			defer wg.Done()
			if cfg.inflight <= 1 {
				echoSequential(c, w, mt, cfg.payload, res)
			} else {
				echoPipelined(c, w, mt, cfg.payload, cfg.inflight, res)
			}
			if res.err != nil {
				w.stop() // a broken connection ends the run: its numbers would lie
			}
		}(c, &results[i])
	}
	w.run(cfg.warmup, cfg.duration)
	wg.Wait()
	closeAll(conns)

	var h histogram
	var msgs int64
	var firstErr error
	errors := 0
	for i := range results {
		h.merge(&results[i].hist)
		msgs += results[i].msgs
		if results[i].err != nil {
			errors++
			if firstErr == nil {
				firstErr = results[i].err
			}
		}
	}
	secs := w.seconds()
	out := map[string]any{
		"event":      "result",
		"mode":       "echo",
		"conns":      cfg.conns,
		"size":       len(cfg.payload),
		"inflight":   cfg.inflight,
		"deflate":    cfg.deflate,
		"extensions": ext,
		"seconds":    secs,
		"messages":   msgs,
		"msgs_per_s": float64(msgs) / secs,
		// payload bytes per second in each direction
		"mbytes_per_s": float64(msgs) * float64(len(cfg.payload)) / secs / 1e6,
		"p50_us":       h.quantile(0.50),
		"p99_us":       h.quantile(0.99),
		"errors":       errors,
	}
	if firstErr != nil {
		out["error"] = firstErr.Error()
	}
	w.genStats(out)
	emit(out)
}

func checkEcho(payload, got []byte, checked *bool) error {
	if len(got) != len(payload) {
		return fmt.Errorf("echo of %d bytes came back as %d bytes", len(payload), len(got))
	}
	if !*checked { // full comparison once per connection; length on every reply
		*checked = true
		if !bytes.Equal(got, payload) {
			return fmt.Errorf("echo came back with different content")
		}
	}
	return nil
}

func echoSequential(c *websocket.Conn, w *window, mt int, payload []byte, res *connResult) {
	buf := make([]byte, len(payload)+64)
	checked := false
	for !w.finished() {
		t0 := nowNS()
		if err := c.WriteMessage(mt, payload); err != nil {
			res.err = err
			return
		}
		var n int
		var err error
		_, buf, n, err = readMessage(c, buf)
		if err != nil {
			res.err = err
			return
		}
		if err := checkEcho(payload, buf[:n], &checked); err != nil {
			res.err = err
			return
		}
		if w.measuring() {
			res.hist.record(nowNS() - t0)
			res.msgs++
			w.count(1)
		}
	}
}

func echoPipelined(c *websocket.Conn, w *window, mt int, payload []byte, inflight int, res *connResult) {
	// The channel holds the send times of the messages in flight; its
	// capacity is the pipeline depth, so a full channel holds the writer back.
	sent := make(chan int64, inflight)
	writeErr := make(chan error, 1)
	go func() {
		defer close(sent)
		fw := newFrameWriter(mt == websocket.TextMessage)
		raw := c.UnderlyingConn()
		var batch []byte
		for !w.finished() {
			// Wait for one free slot, then take every other free slot there is
			// and send the whole batch with one write.
			t := nowNS()
			sent <- t
			batch = fw.appendFrame(batch[:0], payload)
		more:
			for j := 1; j < inflight; j++ {
				select {
				case sent <- t:
					batch = fw.appendFrame(batch, payload)
				default:
					break more
				}
			}
			if _, err := raw.Write(batch); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	buf := make([]byte, len(payload)+64)
	checked := false
	for t0 := range sent {
		var n int
		var err error
		_, buf, n, err = readMessage(c, buf)
		if err != nil {
			select {
			case res.err = <-writeErr:
			default:
				res.err = err
			}
			return
		}
		if err := checkEcho(payload, buf[:n], &checked); err != nil {
			res.err = err
			return
		}
		if w.measuring() {
			res.hist.record(nowNS() - t0)
			res.msgs++
			w.count(1)
		}
	}
}
