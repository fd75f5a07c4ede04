package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
)

// The reference server: gorilla/websocket's own echo and broadcast, in Go.
// Run on the server core, it shows how fast the load generator can go when
// the server is not the limit, i.e. the generator's ceiling.

type member struct {
	conn *websocket.Conn
	mu   sync.Mutex // gorilla allows one concurrent writer per connection
}

type room struct {
	mu      sync.Mutex
	members map[*member]struct{}
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:    64 * 1024,
	WriteBufferSize:   64 * 1024,
	EnableCompression: true,
	CheckOrigin:       func(*http.Request) bool { return true },
}

// Without compression the echo skips gorilla's message API: it echoes every
// frame it has read with a single write, as a lean server would, so that the
// generator, not this server, is what the ceiling row measures.
var plainUpgrader = websocket.Upgrader{
	CheckOrigin: func(*http.Request) bool { return true },
}

func rawEcho(conn net.Conn) {
	defer conn.Close()
	in := make([]byte, 64*1024)
	have := 0
	var out []byte
	for {
		if have == len(in) {
			bigger := make([]byte, 2*len(in))
			copy(bigger, in[:have])
			in = bigger
		}
		n, err := conn.Read(in[have:])
		if err != nil {
			return
		}
		have += n
		out = out[:0]
		used := 0
		for {
			frame := in[used:have]
			if len(frame) < 2 {
				break
			}
			// RFC 6455 §5.2: client frames are masked; lengths 126/127 extend.
			plen, hlen := uint64(frame[1]&0x7f), 2
			switch plen {
			case 126:
				if len(frame) < 4 {
					break
				}
				plen, hlen = uint64(binary.BigEndian.Uint16(frame[2:])), 4
			case 127:
				if len(frame) < 10 {
					break
				}
				plen, hlen = binary.BigEndian.Uint64(frame[2:]), 10
			}
			if plen >= 126 && hlen == 2 { // extended length not read yet
				break
			}
			total := hlen + 4 + int(plen)
			if len(frame) < total {
				if total > len(in) {
					bigger := make([]byte, total+hlen)
					copy(bigger, in[used:have])
					in, have, used = bigger, have-used, 0
				}
				break
			}
			opcode := frame[0] & 0x0f
			var key [4]byte
			copy(key[:], frame[hlen:hlen+4])
			payload := frame[hlen+4 : total]
			maskBytes(key, payload)
			switch opcode {
			case 0x8: // close: answer it and hang up (§5.5.1)
				out = append(out, 0x88, byte(len(payload)))
				out = append(out, payload...)
				conn.Write(out)
				return
			case 0x9: // ping -> pong (§5.5.2)
				out = append(out, 0x8a, byte(len(payload)))
			case 0xa:
				used += total
				continue
			default:
				out = append(out, frame[0], frame[1]&0x7f)
				out = append(out, frame[2:hlen]...)
			}
			out = append(out, payload...)
			used += total
		}
		copy(in, in[used:have])
		have -= used
		if len(out) > 0 {
			if _, err := conn.Write(out); err != nil {
				return
			}
		}
	}
}

func serveEcho(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		c, err := plainUpgrader.Upgrade(w, r, nil)
		if err == nil {
			rawEcho(c.UnderlyingConn())
		}
		return
	}
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	var buf []byte = make([]byte, 4096)
	for {
		mt, b, n, err := readMessage(c, buf)
		buf = b
		if err != nil {
			return
		}
		if err := c.WriteMessage(mt, buf[:n]); err != nil {
			return
		}
	}
}

func (rm *room) serve(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	m := &member{conn: c}
	rm.mu.Lock()
	rm.members[m] = struct{}{}
	rm.mu.Unlock()
	defer func() {
		rm.mu.Lock()
		delete(rm.members, m)
		rm.mu.Unlock()
		c.Close()
	}()
	var targets []*member
	for {
		mt, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		pm, err := websocket.NewPreparedMessage(mt, data)
		if err != nil {
			return
		}
		rm.mu.Lock()
		targets = targets[:0]
		for t := range rm.members {
			targets = append(targets, t)
		}
		rm.mu.Unlock()
		for _, t := range targets {
			t.mu.Lock()
			t.conn.WritePreparedMessage(pm)
			t.mu.Unlock()
		}
	}
}

// jsonBody is what every HTTP server of the benchmark answers on /json: fastIM's
// envelope around a small object.
var jsonBody = []byte(`{"code":0,"msg":"","data":{"id":1,"name":"fastim","online":true}}`)

func runServer(addr, static string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fatalf("listen: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", serveEcho)
	rm := &room{members: map[*member]struct{}{}}
	mux.HandleFunc("/broadcast", rm.serve)
	// The HTTP scenarios' reference: net/http on the server core, wrk's ceiling.
	mux.HandleFunc("/json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(jsonBody)
	})
	if static != "" {
		mux.Handle("/static/", http.StripPrefix("/static/", http.FileServer(http.Dir(static))))
	}
	fmt.Printf("READY %d\n", ln.Addr().(*net.TCPAddr).Port)
	http.Serve(ln, mux)
}
