package portmappertest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Launch is what one fake proxy process recorded of its life.
type Launch struct {
	// Pid is the fake's process id.
	Pid int `json:"pid"`

	// Args is its whole command line, argv[0] included.
	Args []string `json:"args"`

	// FDs lists the descriptors it had open when it started, ascending.
	FDs []int `json:"fds"`

	// ListenSocket describes fd 4 if it was a socket; nil otherwise.
	ListenSocket *Socket `json:"listen_socket,omitempty"`

	// NetNS names the network namespace it ran in, as the link
	// /proc/self/ns/net reads ("net:[4026531840]").
	NetNS string `json:"netns"`

	// Signals lists the signals it received, in order, by name
	// ("interrupt", "terminated").
	Signals []string `json:"signals,omitempty"`

	// Exited is true if the fake ended by itself, with ExitCode; false if
	// it was killed or is still running.
	Exited   bool `json:"exited,omitempty"`
	ExitCode int  `json:"exit_code,omitempty"`

	// HolderPid is the child a [FailHeld] fake left holding its pipes.
	HolderPid int `json:"holder_pid,omitempty"`
}

// Socket describes a socket a fake inherited.
type Socket struct {
	// Proto is "tcp", "udp" or "sctp", or says what else it was.
	Proto string `json:"proto"`

	// Family is "ipv4" or "ipv6".
	Family string `json:"family"`

	// Listening reports whether listen(2) had been called on it.
	Listening bool `json:"listening"`

	// Addr is its local address, as ip:port.
	Addr string `json:"addr"`
}

// event is one line of a launch record file. A fake writes one start
// event, then one per signal, then at most one exit.
type event struct {
	Kind   string  `json:"kind"` // "start", "signal", "holder" or "exit"
	Start  *Launch `json:"start,omitempty"`
	Signal string  `json:"signal,omitempty"`
	Pid    int     `json:"pid,omitempty"`
	Code   int     `json:"code,omitempty"`
}

const recordPattern = "launch-*.jsonl"

// recordFile is where the fake with pid writes its events.
func recordFile(dir string, pid int) string {
	return filepath.Join(dir, strings.Replace(recordPattern, "*", fmt.Sprint(pid), 1))
}

// appendEvent adds e to the record file in one write, so that a reader
// never sees half an event.
func appendEvent(path string, e event) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	return errors.Join(err, f.Close())
}

// readLaunches folds every record file in dir into launches, in pid order.
func readLaunches(dir string) ([]Launch, error) {
	files, err := filepath.Glob(filepath.Join(dir, recordPattern))
	if err != nil {
		return nil, err
	}

	var launches []Launch
	for _, file := range files {
		l, err := readLaunch(file)
		if err != nil {
			return nil, fmt.Errorf("reading fake proxy record %s: %w", file, err)
		}
		launches = append(launches, l)
	}
	slices.SortFunc(launches, func(a, b Launch) int { return a.Pid - b.Pid })
	return launches, nil
}

func readLaunch(file string) (Launch, error) {
	f, err := os.Open(file)
	if err != nil {
		return Launch{}, err
	}
	defer f.Close()

	var l Launch
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return Launch{}, err
		}
		l.apply(e)
	}
	return l, sc.Err()
}

func (l *Launch) apply(e event) {
	switch e.Kind {
	case "start":
		*l = *e.Start
	case "signal":
		l.Signals = append(l.Signals, e.Signal)
	case "holder":
		l.HolderPid = e.Pid
	case "exit":
		l.Exited, l.ExitCode = true, e.Code
	}
}
