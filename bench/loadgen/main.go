// Command loadgen is fastim's WebSocket load generator (issue 10): a compiled
// client on gorilla/websocket, so that one core of Go outruns one core of any
// Python server under test. It prints one JSON object per line: "start" and
// "stop" events around the measured window, then a "result".
package main

import (
	"errors"
	"flag"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"time"
)

var errMismatch = errors.New("echo came back with different content")

func main() {
	mode := flag.String("mode", "echo", "echo | broadcast | idle | server")
	url := flag.String("url", "ws://127.0.0.1:8765/echo", "WebSocket URL to load")
	addr := flag.String("addr", "127.0.0.1:0", "server mode: address to listen on")
	static := flag.String("static", "", "server mode: serve this directory under /static/")
	conns := flag.Int("conns", 1, "connections (the room size for broadcast)")
	size := flag.Int("size", 32, "message size in bytes")
	payloadFile := flag.String("payload-file", "", "echo this file's content as a text message instead of -size random bytes")
	inflight := flag.Int("inflight", 1, "echo: messages in flight per connection")
	window := flag.Int("window", 8, "broadcast: messages the sender keeps in flight")
	deflate := flag.Bool("deflate", false, "offer permessage-deflate (RFC 7692)")
	warmup := flag.Duration("warmup", 500*time.Millisecond, "unmeasured warm-up")
	duration := flag.Duration("duration", 3*time.Second, "measured window")
	maxMsgs := flag.Int64("max-messages", 0, "end the window after this many messages (0: no bound)")
	hold := flag.Duration("hold", 60*time.Second, "idle: longest hold before closing")
	cpuProfile := flag.String("cpuprofile", "", "write a Go CPU profile of the generator here")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fatalf("cpuprofile: %v", err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	// A bounded run even if something hangs: never outlive the window by much.
	limit := *warmup + *duration + *hold + 2*time.Minute
	time.AfterFunc(limit, func() { fatalf("run exceeded %s; giving up", limit) })
	// Fewer collections: the generator's core is the measuring instrument.
	debug.SetGCPercent(400)

	switch *mode {
	case "echo":
		cfg := echoConfig{url: *url, conns: *conns, inflight: *inflight, deflate: *deflate,
			warmup: *warmup, duration: *duration, maxMsgs: *maxMsgs}
		if *payloadFile != "" {
			b, err := os.ReadFile(*payloadFile)
			if err != nil {
				fatalf("payload: %v", err)
			}
			cfg.payload, cfg.text = b, true
		} else {
			cfg.payload = make([]byte, *size)
			for i := range cfg.payload {
				cfg.payload[i] = byte(i*7 + i>>8)
			}
		}
		runEcho(cfg)
	case "broadcast":
		runBroadcast(broadcastConfig{url: *url, conns: *conns, size: *size, window: *window,
			warmup: *warmup, duration: *duration, maxMsgs: *maxMsgs})
	case "idle":
		runIdle(idleConfig{url: *url, conns: *conns, hold: *hold})
	case "server":
		runServer(*addr, *static)
	default:
		fatalf("unknown mode %q", *mode)
	}
}
