package main

import (
	crand "crypto/rand"
	"encoding/binary"
)

// frameWriter builds masked client frames (RFC 6455 §5.2) itself so that the
// pipelined writer can put a whole batch of messages into one write(2): with
// gorilla's WriteMessage every message costs a system call, which made the
// generator, not the server, the limit of the pipelined scenario.
type frameWriter struct {
	opcode byte
	state  uint64 // xorshift64 state for the masking keys
}

func newFrameWriter(text bool) *frameWriter {
	var seed [8]byte
	crand.Read(seed[:])
	fw := &frameWriter{opcode: 0x2, state: binary.LittleEndian.Uint64(seed[:]) | 1}
	if text {
		fw.opcode = 0x1
	}
	return fw
}

// nextKey: RFC 6455 §5.3 asks for an unpredictable key per frame; a seeded
// xorshift keeps that spirit at the cost of a few instructions.
func (fw *frameWriter) nextKey() [4]byte {
	x := fw.state
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	fw.state = x
	var k [4]byte
	binary.LittleEndian.PutUint32(k[:], uint32(x))
	return k
}

// appendFrame appends one final, masked data frame carrying payload to dst.
func (fw *frameWriter) appendFrame(dst, payload []byte) []byte {
	b := append(dst, 0x80|fw.opcode) // FIN, no RSV bits, §5.2
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := fw.nextKey()
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	maskBytes(key, b[start:])
	return b
}

// maskBytes XORs data with the 4-byte key (RFC 6455 §5.3), eight bytes at a time:
// byte by byte, masking a 1 MiB message would cost the generator a millisecond.
func maskBytes(key [4]byte, data []byte) {
	k32 := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k32) | uint64(k32)<<32
	i := 0
	for ; i+8 <= len(data); i += 8 {
		binary.LittleEndian.PutUint64(data[i:], binary.LittleEndian.Uint64(data[i:])^k64)
	}
	for ; i < len(data); i++ {
		data[i] ^= key[i&3]
	}
}
