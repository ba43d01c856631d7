package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Worker processes are pinned to one CPU each (-pin-workers). One CPython
// process whose Python threads run on several CPUs makes them fight over
// its GIL across the CPUs: with 2 workers of 8 threads on 2 CPUs, Flask
// JSON cost 178 CPU-µs per request unpinned and 102 pinned (uWSGI: 93-110),
// and served 9.2k against 16.1k req/s (make bench-cores, 2026-12-05).

// envWorkerCPU names the CPU a worker pins itself to, set by the master.
const envWorkerCPU = "WSGI_WORKER_CPU"

// allowedCPUs lists the CPUs this process may run on.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// pinThisProcess pins every thread of this process to cpu. Threads started
// later inherit it from the thread that starts them; a second pass catches
// one started during the first.
func pinThisProcess(cpu int) error {
	var one unix.CPUSet
	one.Set(cpu)
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &one); err != nil {
				return fmt.Errorf("wsgi: pinning thread %d to CPU %d: %w", tid, cpu, err)
			}
		}
	}
	return nil
}
