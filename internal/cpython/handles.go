package cpython

import "sync"

// Handle names a live Request to the C side: a small integer, so that no
// Go pointer is kept by C. Unlike runtime/cgo.Handle it allocates nothing
// per request: slots are reused.
type Handle uintptr

var registry struct {
	mu    sync.Mutex
	slots []Request // slot i holds Handle i+1
	free  []Handle
}

// Register makes r reachable from C until Release.
func Register(r Request) Handle {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if n := len(registry.free); n > 0 {
		h := registry.free[n-1]
		registry.free = registry.free[:n-1]
		registry.slots[h-1] = r
		return h
	}
	registry.slots = append(registry.slots, r)
	return Handle(len(registry.slots))
}

// Release forgets the request. The C layer has already cut its Python
// objects off the handle (wsgi_req_finish), so the slot can be reused.
func (h Handle) Release() {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	registry.slots[h-1] = nil
	registry.free = append(registry.free, h)
}

func (h Handle) request() Request {
	if h == 0 {
		return nil
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if int(h) > len(registry.slots) {
		return nil
	}
	return registry.slots[h-1]
}
