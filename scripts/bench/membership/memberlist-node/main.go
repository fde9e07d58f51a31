// Command memberlist-node is one hashicorp/memberlist member in a process of
// its own, over memberlist's real network transport (UDP for probes and
// gossip, TCP for push-pull), for scripts/bench-membership-real, which runs N
// of them on loopback next to N meshd processes.
//
// Configuration is DefaultLANConfig (probe interval 1 s, as meshd's lan
// profile), or other probe, gossip and push-pull intervals given as flags
// (meshd's thunderbolt profile's, for --profile thunderbolt), with
// encryption on (a 32-byte SecretKey, AES-256-GCM). It prints
// one line per event, with the wall time in milliseconds since the epoch, so
// that the benchmark can time detection and dissemination across processes:
//
//	ready <name> <ms>
//	join <name> <ms>     a member joined or came back (NotifyJoin)
//	leave <name> <ms>    a member was declared dead or left (NotifyLeave)
//
// It runs until killed.
package main

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

type printer struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (p *printer) line(kind, name string) {
	ms := time.Now().UnixNano() / int64(time.Millisecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %s %d\n", kind, name, ms)
	p.w.Flush()
}

type events struct{ p *printer }

func (e *events) NotifyJoin(n *memberlist.Node)   { e.p.line("join", n.Name) }
func (e *events) NotifyLeave(n *memberlist.Node)  { e.p.line("leave", n.Name) }
func (e *events) NotifyUpdate(n *memberlist.Node) {}

func main() {
	name := flag.String("name", "", "member name (unique)")
	bind := flag.String("bind", "127.0.0.1", "address to bind and advertise")
	port := flag.Int("port", 0, "UDP and TCP port")
	join := flag.String("join", "", "comma-separated host:port of members to join")
	key := flag.String("key", "", "64 hex digits: the shared encryption key")
	probeInterval := flag.Int("probe-interval", 0, "ms between probes (0: DefaultLANConfig's 1000)")
	probeTimeout := flag.Int("probe-timeout", 0, "ms to wait for a direct ack (0: 500)")
	gossipInterval := flag.Int("gossip-interval", 0, "ms between gossip rounds (0: 200)")
	pushPull := flag.Int("push-pull-interval", 0, "ms between push-pulls (0: 30000)")
	gossipToDead := flag.Int("gossip-to-dead", 0, "ms to keep gossiping to the dead (0: 30000)")
	flag.Parse()
	if *name == "" || *port <= 0 {
		fmt.Fprintln(os.Stderr, "memberlist-node: -name and -port are required")
		os.Exit(2)
	}
	secret, err := hex.DecodeString(*key)
	if err != nil || len(secret) != 32 {
		fmt.Fprintln(os.Stderr, "memberlist-node: -key must be 64 hex digits")
		os.Exit(2)
	}
	p := &printer{w: bufio.NewWriter(os.Stdout)}
	c := memberlist.DefaultLANConfig()
	c.Name = *name
	c.BindAddr = *bind
	c.BindPort = *port
	c.AdvertiseAddr = *bind
	c.AdvertisePort = *port
	c.SecretKey = secret
	// Other timings than DefaultLANConfig's, to compare with a meshd
	// profile at the same intervals (scripts/bench-membership-real
	// --profile).
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	if *probeInterval > 0 {
		c.ProbeInterval = ms(*probeInterval)
	}
	if *probeTimeout > 0 {
		c.ProbeTimeout = ms(*probeTimeout)
	}
	if *gossipInterval > 0 {
		c.GossipInterval = ms(*gossipInterval)
	}
	if *pushPull > 0 {
		c.PushPullInterval = ms(*pushPull)
	}
	if *gossipToDead > 0 {
		c.GossipToTheDeadTime = ms(*gossipToDead)
	}
	c.Events = &events{p: p}
	c.LogOutput = ioutil.Discard
	list, err := memberlist.Create(c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "memberlist-node: %v\n", err)
		os.Exit(1)
	}
	if *join != "" {
		// Retry until a seed answers, as meshd's --join does.
		seeds := strings.Split(*join, ",")
		for {
			if _, err := list.Join(seeds); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	p.line("ready", *name)
	select {}
}
