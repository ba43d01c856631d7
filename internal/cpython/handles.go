package cpython

import "sync"

// Handle names a live Request to the C side: an integer, so that no Go
// pointer is kept by C. The low 32 bits are a slot, the high 32 bits the
// slot's generation, so that a handle kept by Python past its request
// (an ASGI task still running after the client left, say) never reaches
// the request that reuses the slot. Unlike runtime/cgo.Handle it
// allocates nothing per request.
type Handle uintptr

type slot struct {
	req any // a Request or an ASGIRequest
	gen uint32
}

var registry struct {
	mu    sync.Mutex
	slots []slot
	free  []uint32
}

// Register makes r (a Request or an ASGIRequest) reachable from C until
// Release.
func Register(r any) Handle {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	var i uint32
	if n := len(registry.free); n > 0 {
		i = registry.free[n-1]
		registry.free = registry.free[:n-1]
	} else {
		registry.slots = append(registry.slots, slot{})
		i = uint32(len(registry.slots) - 1)
	}
	s := &registry.slots[i]
	s.req = r
	s.gen++
	if s.gen == 0 { // 0 would make handle 0 possible; skip it
		s.gen = 1
	}
	return Handle(uint64(s.gen)<<32 | uint64(i))
}

// Release forgets the request; its handle finds nothing from now on.
func (h Handle) Release() {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	i, gen := h.parts()
	if int(i) >= len(registry.slots) || registry.slots[i].gen != gen {
		return
	}
	registry.slots[i].req = nil
	registry.free = append(registry.free, i)
}

func (h Handle) parts() (slot uint32, gen uint32) {
	return uint32(uint64(h)), uint32(uint64(h) >> 32)
}

func (h Handle) request() any {
	if h == 0 {
		return nil
	}
	i, gen := h.parts()
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if int(i) >= len(registry.slots) || registry.slots[i].gen != gen {
		return nil
	}
	return registry.slots[i].req
}
