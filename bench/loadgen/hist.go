package main

import "math/bits"

// histogram is a log-linear latency histogram in nanoseconds: 64 linear
// sub-buckets per power of two, so any recorded value is known to within
// about 1.6 %. One histogram per goroutine, merged at the end, so recording
// a latency costs no lock.
const subBits = 6
const subCount = 1 << subBits
const maxExp = 40 // 2^40 ns is about 18 minutes: far beyond any bounded run

type histogram struct {
	counts [(maxExp + 1) * subCount]uint32
	total  uint64
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1 // v>>shift lies in [64, 127]
	idx := (shift+1)*subCount + int(v>>uint(shift)) - subCount
	if idx >= len(histogram{}.counts) {
		idx = len(histogram{}.counts) - 1
	}
	return idx
}

// bucketMid is the middle of the value range that bucket idx stands for.
func bucketMid(idx int) float64 {
	if idx < subCount {
		return float64(idx)
	}
	shift := idx/subCount - 1
	m := uint64(idx%subCount + subCount)
	low := m << uint(shift)
	return float64(low) + float64(uint64(1)<<uint(shift))/2
}

func (h *histogram) record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.counts[bucketOf(uint64(ns))]++
	h.total++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// quantile returns the q-quantile (0 < q <= 1) in microseconds, 0 when empty.
func (h *histogram) quantile(q float64) float64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q * float64(h.total))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return bucketMid(i) / 1000
		}
	}
	return bucketMid(len(h.counts)-1) / 1000
}
