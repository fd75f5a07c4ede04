package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// The run goes through three phases. Only what happens while measuring is
// counted; the harness snapshots the server's CPU time when it reads the
// "start" and "stop" events, so the two windows line up to a millisecond.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDone
)

var epoch = time.Now()

// nowNS is monotonic nanoseconds since the process started.
func nowNS() int64 { return int64(time.Since(epoch)) }

var outMu sync.Mutex

// emit writes one JSON object per line on stdout, the harness's only input.
func emit(v map[string]any) {
	outMu.Lock()
	defer outMu.Unlock()
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(append(b, '\n'))
}

func fatalf(format string, args ...any) {
	emit(map[string]any{"event": "error", "error": fmt.Sprintf(format, args...)})
	os.Exit(1)
}

// cpuSeconds is the user+system CPU time this process has used so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// window tracks the measured interval: it starts after the warm-up and ends
// after the duration or once maxMessages have been counted, whichever is first.
type window struct {
	phase       atomic.Int32
	counted     atomic.Int64
	maxMessages int64
	startNS     int64
	stopNS      int64
	startCPU    float64
	stopCPU     float64
	stopOnce    sync.Once
	done        chan struct{}
}

func newWindow(maxMessages int64) *window {
	return &window{maxMessages: maxMessages, done: make(chan struct{})}
}

// run sleeps through the warm-up, opens the window and closes it after d.
func (w *window) run(warmup, d time.Duration) {
	select {
	case <-time.After(warmup):
	case <-w.done: // a connection failed during the warm-up
		return
	}
	w.startCPU = cpuSeconds()
	w.startNS = nowNS()
	if !w.phase.CompareAndSwap(phaseWarmup, phaseMeasure) {
		return
	}
	emit(map[string]any{"event": "start"})
	select {
	case <-time.After(d):
	case <-w.done:
	}
	w.stop()
}

func (w *window) stop() {
	w.stopOnce.Do(func() {
		w.stopNS = nowNS()
		w.stopCPU = cpuSeconds()
		w.phase.Store(phaseDone)
		emit(map[string]any{"event": "stop"})
		close(w.done)
	})
}

func (w *window) measuring() bool { return w.phase.Load() == phaseMeasure }
func (w *window) finished() bool  { return w.phase.Load() == phaseDone }

// count adds n measured messages and closes the window at the message bound.
func (w *window) count(n int64) {
	if w.maxMessages > 0 && w.counted.Add(n) >= w.maxMessages {
		go w.stop()
	}
}

func (w *window) seconds() float64 {
	return time.Duration(w.stopNS - w.startNS).Seconds()
}

// genStats reports the generator's own CPU use in the window: near 1.0 means
// the generator's single core was saturated and the row shows its limit,
// not the server's.
func (w *window) genStats(out map[string]any) {
	cpu := w.stopCPU - w.startCPU
	out["gen_cpu_s"] = cpu
	if s := w.seconds(); s > 0 {
		out["gen_cpu_util"] = cpu / s
	}
}

// readMessage reads one whole message into buf (grown as needed) without a
// fresh allocation per message.
func readMessage(c *websocket.Conn, buf []byte) (int, []byte, int, error) {
	mt, r, err := c.NextReader()
	if err != nil {
		return 0, buf, 0, err
	}
	n := 0
	for {
		if n == len(buf) {
			nb := make([]byte, 2*len(buf)+512)
			copy(nb, buf)
			buf = nb
		}
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return mt, buf, n, nil
		}
		if err != nil {
			return mt, buf, n, err
		}
	}
}

func newDialer(size int, deflate bool) *websocket.Dialer {
	// A write buffer larger than the message makes gorilla send each message
	// as one frame, as a browser does, instead of 4 KiB fragments.
	wb := size + 64
	if wb < 4096 {
		wb = 4096
	}
	rb := 64 * 1024
	if size < 4096 {
		rb = 4096
	}
	return &websocket.Dialer{
		ReadBufferSize:    rb,
		WriteBufferSize:   wb,
		EnableCompression: deflate,
		HandshakeTimeout:  10 * time.Second,
	}
}

// dialAll opens n connections, at most `parallel` handshakes at a time.
func dialAll(d *websocket.Dialer, url string, n, parallel int) ([]*websocket.Conn, string, int, error) {
	conns := make([]*websocket.Conn, n)
	errs := make([]error, n)
	exts := make([]string, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, resp, err := d.Dial(url, nil)
			if err != nil {
				errs[i] = err
				return
			}
			conns[i] = c
			exts[i] = resp.Header.Get("Sec-WebSocket-Extensions")
		}(i)
	}
	wg.Wait()
	failed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	return conns, exts[0], failed, first
}

func closeAll(conns []*websocket.Conn) {
	deadline := time.Now().Add(time.Second)
	for _, c := range conns {
		if c == nil {
			continue
		}
		c.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
		c.Close()
	}
}
