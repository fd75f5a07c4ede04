package main

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

type broadcastConfig struct {
	url      string
	conns    int // room size; connection 0 also sends
	size     int
	window   int // messages the sender keeps in flight
	warmup   time.Duration
	duration time.Duration
	maxMsgs  int64
}

// Broadcast payload: kind byte, send time (ns since this process started,
// little endian), padding. Sync messages only prove a receiver has joined.
const (
	kindSync byte = 0
	kindLoad byte = 1
	bcHeader      = 9
)

type receiverResult struct {
	hist       histogram
	deliveries int64
	err        error
}

// runBroadcast opens a room of cfg.conns connections. The server sends every
// message it receives on /broadcast to every member, the sender included.
// The sender's own copy paces it: it keeps at most cfg.window messages whose
// copy has not come back, so the server is kept busy without letting its
// buffers grow without bound. Every member times every delivery from the
// timestamp in the payload.
func runBroadcast(cfg broadcastConfig) {
	if cfg.size < bcHeader {
		cfg.size = bcHeader
	}
	d := newDialer(cfg.size, false)
	conns, _, failed, err := dialAll(d, cfg.url, cfg.conns, 64)
	if failed > 0 {
		fatalf("%d of %d connections failed to open: %v", failed, cfg.conns, err)
	}
	w := newWindow(cfg.maxMsgs)
	joined := make(chan struct{}, cfg.conns)
	tokens := make(chan struct{}, cfg.window)
	for i := 0; i < cfg.window; i++ {
		tokens <- struct{}{}
	}
	results := make([]receiverResult, len(conns))
	deadline := time.Now().Add(cfg.warmup + cfg.duration + 60*time.Second)
	var wg sync.WaitGroup
	for i, c := range conns {
		c.SetReadDeadline(deadline)
		wg.Add(1)
		go func(i int, c *websocket.Conn, res *receiverResult) {
			defer wg.Done()
			buf := make([]byte, cfg.size+64)
			first := true
			for {
				var n int
				var err error
				_, buf, n, err = readMessage(c, buf)
				if err != nil {
					if !w.finished() {
						res.err = err
						w.stop()
					}
					return
				}
				if n < bcHeader {
					res.err = fmt.Errorf("broadcast message of %d bytes, want %d", n, cfg.size)
					w.stop()
					return
				}
				if first {
					first = false
					joined <- struct{}{}
				}
				if buf[0] != kindLoad {
					continue
				}
				if w.measuring() {
					sentAt := int64(binary.LittleEndian.Uint64(buf[1:bcHeader]))
					res.hist.record(nowNS() - sentAt)
					res.deliveries++
					w.count(1)
				}
				if i == 0 {
					tokens <- struct{}{}
				}
			}
		}(i, c, &results[i])
	}

	sender := conns[0]
	sender.SetWriteDeadline(deadline)
	payload := make([]byte, cfg.size)

	// The 101 reaching the client does not prove the server's handler has put
	// the connection in the room yet: send sync messages until every member
	// has received one.
	waitJoin := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	for members := 0; members < cfg.conns; {
		select {
		case <-joined:
			members++
		case <-tick.C:
			payload[0] = kindSync
			if err := sender.WriteMessage(websocket.BinaryMessage, payload); err != nil {
				fatalf("sync message: %v", err)
			}
		case <-waitJoin:
			fatalf("only %d of %d members received a broadcast within 30 s", members, cfg.conns)
		}
	}
	tick.Stop()

	var sent int64
	sendErr := make(chan error, 1)
	go func() {
		payload[0] = kindLoad
		for {
			select {
			case <-tokens:
			case <-w.done:
				sendErr <- nil
				return
			}
			if w.finished() {
				sendErr <- nil
				return
			}
			binary.LittleEndian.PutUint64(payload[1:bcHeader], uint64(nowNS()))
			if err := sender.WriteMessage(websocket.BinaryMessage, payload); err != nil {
				sendErr <- err
				w.stop()
				return
			}
			if w.measuring() {
				sent++
			}
		}
	}()
	w.run(cfg.warmup, cfg.duration)
	serr := <-sendErr
	// Let the messages still in flight arrive, then hang up; the readers
	// then fail their reads with the window closed and return quietly.
	time.Sleep(200 * time.Millisecond)
	closeAll(conns)
	wg.Wait()

	var h histogram
	var deliveries int64
	var firstErr error = serr
	errors := 0
	if serr != nil {
		errors++
	}
	for i := range results {
		h.merge(&results[i].hist)
		deliveries += results[i].deliveries
		if results[i].err != nil {
			errors++
			if firstErr == nil {
				firstErr = results[i].err
			}
		}
	}
	secs := w.seconds()
	out := map[string]any{
		"event":            "result",
		"mode":             "broadcast",
		"conns":            cfg.conns,
		"size":             cfg.size,
		"window":           cfg.window,
		"seconds":          secs,
		"sent":             sent,
		"messages":         deliveries,
		"deliveries":       deliveries,
		"deliveries_per_s": float64(deliveries) / secs,
		"msgs_per_s":       float64(deliveries) / secs,
		"p50_us":           h.quantile(0.50),
		"p99_us":           h.quantile(0.99),
		"errors":           errors,
	}
	if firstErr != nil {
		out["error"] = firstErr.Error()
	}
	w.genStats(out)
	emit(out)
}
