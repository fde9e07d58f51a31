// Command memberlist-bench runs N hashicorp/memberlist nodes in one process
// over an in-memory network and measures the same figures, in the same order
// and the same protocol-relative phases, as sim_bench does for meshd:
//
//	detection time after a crash (p50, max over the live members),
//	time for one update to reach everyone,
//	messages and bytes per member per second when the view is quiet,
//	members wrongly declared dead during 120 probe intervals at each loss rate.
//
// Configuration is DefaultLANConfig with encryption on (SecretKey set). Every
// interval and timeout is multiplied by -scale so that large N runs in
// reasonable wall time; link delays are scaled the same way. Figures are
// printed divided by the scale, that is in milliseconds of a 1 s probe
// interval (the lan profile of both meshd and memberlist), so they compare
// directly with the simulator's virtual time.
//
// The network drops each packet (memberlist's UDP path) independently with the
// current loss probability and delays it by delay + uniform[0, jitter]; streams
// (memberlist's TCP path) are reliable and delayed by delay, as the meshd
// simulator treats its datagram and stream classes.
//
// Output: one tab-separated line per run, columns as sim_bench prints them,
// then wire bytes per member per second (with encryption), the scale and the
// 99th percentile of scheduling lag (wall ms), so that a run starved of CPU
// can be recognised.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"math/rand"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Encryption overhead memberlist adds (protocol version 2 uses encryption
// version 1: version byte, 12-byte nonce, 16-byte GCM tag); a stream message
// also carries a type byte and a 4-byte length before the encrypted part.
const (
	packetCryptoOverhead = 1 + 12 + 16
	streamCryptoOverhead = 1 + 4 + packetCryptoOverhead
)

type stats struct {
	packets     uint64
	packetBytes uint64
	streamMsgs  uint64
	streamBytes uint64
	lost        uint64
	overflow    uint64
}

type network struct {
	mu     sync.Mutex
	rng    *rand.Rand
	loss   float64
	delay  time.Duration
	jitter time.Duration
	nodes  map[string]*transport
	st     stats
}

func (n *network) setLoss(p float64) {
	n.mu.Lock()
	n.loss = p
	n.mu.Unlock()
}

// dropAndDelay decides one packet's fate: lost, or delivered after the
// returned delay.
func (n *network) dropAndDelay() (bool, time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.loss > 0 && n.rng.Float64() < n.loss {
		return true, 0
	}
	d := n.delay
	if n.jitter > 0 {
		d += time.Duration(n.rng.Int63n(int64(n.jitter) + 1))
	}
	return false, d
}

func (n *network) lookup(addr string) *transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[addr]
}

type transport struct {
	net      *network
	ip       net.IP
	port     int
	addr     string
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	down     int32
}

func newTransport(n *network, i int) *transport {
	ip := net.IPv4(10, byte(i>>16), byte(i>>8), byte(i))
	t := &transport{
		net:      n,
		ip:       ip,
		port:     7946,
		packetCh: make(chan *memberlist.Packet, 4096),
		streamCh: make(chan net.Conn, 256),
	}
	t.addr = net.JoinHostPort(ip.String(), strconv.Itoa(t.port))
	n.mu.Lock()
	n.nodes[t.addr] = t
	n.mu.Unlock()
	return t
}

func (t *transport) isDown() bool { return atomic.LoadInt32(&t.down) != 0 }

func (t *transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.ip, t.port, nil
}

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	now := time.Now()
	if t.isDown() {
		return now, nil
	}
	n := t.net
	atomic.AddUint64(&n.st.packets, 1)
	atomic.AddUint64(&n.st.packetBytes, uint64(len(b)))
	lost, d := n.dropAndDelay()
	if lost {
		atomic.AddUint64(&n.st.lost, 1)
		return now, nil
	}
	dst := n.lookup(addr)
	if dst == nil {
		return now, nil
	}
	buf := append([]byte(nil), b...)
	from := &net.UDPAddr{IP: t.ip, Port: t.port}
	time.AfterFunc(d, func() {
		if dst.isDown() {
			return
		}
		select {
		case dst.packetCh <- &memberlist.Packet{Buf: buf, From: from, Timestamp: time.Now()}:
		default:
			atomic.AddUint64(&n.st.overflow, 1)
		}
	})
	return now, nil
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.isDown() {
		return nil, errors.New("transport is down")
	}
	dst := t.net.lookup(addr)
	if dst == nil || dst.isDown() {
		return nil, errors.New("connection refused")
	}
	time.Sleep(t.net.delay)
	ca, cb := streamPair(&net.TCPAddr{IP: t.ip, Port: t.port},
		&net.TCPAddr{IP: dst.ip, Port: dst.port}, &t.net.st)
	select {
	case dst.streamCh <- cb:
		return ca, nil
	case <-time.After(timeout):
		ca.Close()
		return nil, errors.New("connection timed out")
	}
}

func (t *transport) StreamCh() <-chan net.Conn { return t.streamCh }

func (t *transport) Shutdown() error {
	atomic.StoreInt32(&t.down, 1)
	return nil
}

// half is one direction of an in-memory stream: writes never block (as with
// a socket's buffer) and reads wait for data, close or the deadline.
type half struct {
	mu     sync.Mutex
	buf    []byte
	closed bool
	notify chan struct{}
}

func newHalf() *half { return &half{notify: make(chan struct{}, 1)} }

func (h *half) wake() {
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

func (h *half) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.wake()
}

// streamConn is one end of an in-memory stream. It counts bytes written and,
// per direction, one message for the first write (memberlist sends one
// message per direction on a stream).
type streamConn struct {
	rd, wr        *half
	local, remote net.Addr
	st            *stats
	wrote         int32
	mu            sync.Mutex
	rdDeadline    time.Time
	wrDeadline    time.Time
}

func streamPair(a, b net.Addr, st *stats) (*streamConn, *streamConn) {
	ab, ba := newHalf(), newHalf()
	return &streamConn{rd: ba, wr: ab, local: a, remote: b, st: st},
		&streamConn{rd: ab, wr: ba, local: b, remote: a, st: st}
}

func (c *streamConn) Read(p []byte) (int, error) {
	for {
		c.mu.Lock()
		dl := c.rdDeadline
		c.mu.Unlock()
		h := c.rd
		h.mu.Lock()
		if len(h.buf) > 0 {
			k := copy(p, h.buf)
			h.buf = h.buf[k:]
			h.mu.Unlock()
			return k, nil
		}
		closed := h.closed
		h.mu.Unlock()
		if closed {
			return 0, io.EOF
		}
		if dl.IsZero() {
			<-h.notify
			continue
		}
		left := time.Until(dl)
		if left <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(left)
		select {
		case <-h.notify:
		case <-t.C:
		}
		t.Stop()
	}
}

func (c *streamConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	dl := c.wrDeadline
	c.mu.Unlock()
	if !dl.IsZero() && time.Now().After(dl) {
		return 0, os.ErrDeadlineExceeded
	}
	h := c.wr
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return 0, errors.New("stream closed")
	}
	h.buf = append(h.buf, p...)
	h.mu.Unlock()
	h.wake()
	if atomic.CompareAndSwapInt32(&c.wrote, 0, 1) {
		atomic.AddUint64(&c.st.streamMsgs, 1)
	}
	atomic.AddUint64(&c.st.streamBytes, uint64(len(p)))
	return len(p), nil
}

func (c *streamConn) Close() error {
	c.rd.close()
	c.wr.close()
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

func (c *streamConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *streamConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdDeadline = t
	c.mu.Unlock()
	c.rd.wake()
	return nil
}

func (c *streamConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wrDeadline = t
	c.mu.Unlock()
	return nil
}

type delegate struct {
	meta atomic.Value
}

func (d *delegate) NodeMeta(limit int) []byte {
	m, _ := d.meta.Load().([]byte)
	return m
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// bench holds what the event delegates observe; they are called with
// memberlist's locks held, so they only record.
type bench struct {
	mu          sync.Mutex
	n           int
	crashed     []bool
	falseDeaths uint64
	deadTarget  int
	deadSeen    []time.Time
	metaTarget  int
	metaWant    string
	metaSeen    []time.Time
}

type events struct {
	b   *bench
	obs int
}

func nodeIndex(name string) int {
	i, err := strconv.Atoi(name[1:])
	if err != nil {
		return -1
	}
	return i
}

func (e *events) NotifyJoin(n *memberlist.Node) { e.NotifyUpdate(n) }

func (e *events) NotifyLeave(n *memberlist.Node) {
	b := e.b
	t := nodeIndex(n.Name)
	// The bench never leaves gracefully, so every leave is a death (the
	// Node passed here does not carry the dead/left state).
	if t < 0 {
		return
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.crashed[t] {
		b.falseDeaths++
	}
	if t == b.deadTarget && b.deadSeen != nil && b.deadSeen[e.obs].IsZero() {
		b.deadSeen[e.obs] = now
	}
}

func (e *events) NotifyUpdate(n *memberlist.Node) {
	b := e.b
	t := nodeIndex(n.Name)
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if t == b.metaTarget && b.metaSeen != nil && string(n.Meta) == b.metaWant &&
		b.metaSeen[e.obs].IsZero() {
		b.metaSeen[e.obs] = now
	}
}

// lagMonitor records how late a 1 ms sleep wakes up: the scheduling delay
// every timer in the process suffers. Lateness is kept in 0.1 ms buckets.
type lagMonitor struct {
	mu      sync.Mutex
	buckets [10001]uint64
	stop    chan struct{}
}

func (l *lagMonitor) run() {
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		t := time.Now()
		time.Sleep(time.Millisecond)
		k := int((time.Since(t) - time.Millisecond) / (100 * time.Microsecond))
		if k < 0 {
			k = 0
		}
		if k >= len(l.buckets) {
			k = len(l.buckets) - 1
		}
		l.mu.Lock()
		l.buckets[k]++
		l.mu.Unlock()
	}
}

// quantile returns the q-quantile of the lateness in wall milliseconds.
func (l *lagMonitor) quantile(q float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var total uint64
	for _, c := range l.buckets {
		total += c
	}
	want := uint64(q * float64(total))
	var acc uint64
	for k, c := range l.buckets {
		acc += c
		if acc > want {
			return float64(k) / 10
		}
	}
	return float64(len(l.buckets)-1) / 10
}

func main() {
	n := flag.Int("n", 8, "members")
	scale := flag.Float64("scale", 0.05, "multiplier for every interval and timeout (1 = real lan timing)")
	seed := flag.Int64("seed", 1, "seed for loss, delay and join order")
	delayMs := flag.Float64("delay-ms", 1, "one-way link delay at scale 1")
	jitterMs := flag.Float64("jitter-ms", 2, "added uniform jitter at scale 1")
	verbose := flag.Bool("v", false, "memberlist's own log on stderr")
	flag.Parse()
	N := *n
	if N < 2 {
		fmt.Fprintln(os.Stderr, "memberlist-bench: -n must be at least 2")
		os.Exit(2)
	}
	sc := *scale
	pi := time.Duration(float64(time.Second) * sc) // one probe interval, wall time
	wall := func(protoMs float64) time.Duration { return time.Duration(protoMs * sc * float64(time.Millisecond)) }
	proto := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / sc }

	netw := &network{
		rng:    rand.New(rand.NewSource(*seed)),
		delay:  wall(*delayMs),
		jitter: wall(*jitterMs),
		nodes:  map[string]*transport{},
	}
	b := &bench{n: N, crashed: make([]bool, N), deadTarget: -1, metaTarget: -1}
	key := []byte("meshd-bench-memberlist-key-32by!")[:32]
	logOut := ioutil.Discard
	if *verbose {
		logOut = os.Stderr
	}

	lag := &lagMonitor{stop: make(chan struct{})}
	go lag.run()

	mls := make([]*memberlist.Memberlist, N)
	trs := make([]*transport, N)
	dels := make([]*delegate, N)
	joinRng := rand.New(rand.NewSource(*seed + 1))
	start := time.Now()
	for i := 0; i < N; i++ {
		c := memberlist.DefaultLANConfig()
		c.Name = fmt.Sprintf("n%d", i)
		c.ProbeInterval = time.Duration(float64(c.ProbeInterval) * sc)
		c.ProbeTimeout = time.Duration(float64(c.ProbeTimeout) * sc)
		c.GossipInterval = time.Duration(float64(c.GossipInterval) * sc)
		c.PushPullInterval = time.Duration(float64(c.PushPullInterval) * sc)
		c.GossipToTheDeadTime = time.Duration(float64(c.GossipToTheDeadTime) * sc)
		c.TCPTimeout = time.Duration(float64(c.TCPTimeout) * sc)
		c.SecretKey = key
		c.Logger = log.New(logOut, c.Name+" ", log.Lmicroseconds)
		trs[i] = newTransport(netw, i)
		c.Transport = trs[i]
		dels[i] = &delegate{}
		dels[i].meta.Store([]byte("v0"))
		c.Delegate = dels[i]
		c.Events = &events{b: b, obs: i}
		ml, err := memberlist.Create(c)
		if err != nil {
			fmt.Fprintf(os.Stderr, "memberlist-bench: node %d: %v\n", i, err)
			os.Exit(1)
		}
		mls[i] = ml
		if i > 0 {
			// Join through a random earlier node, as the simulator does,
			// spreading joins over n * 5 ms of protocol time.
			seedNode := trs[joinRng.Intn(i)].addr
			if _, err := ml.Join([]string{seedNode}); err != nil {
				fmt.Fprintf(os.Stderr, "memberlist-bench: node %d join: %v\n", i, err)
			}
			time.Sleep(wall(5))
		}
	}

	live := func(skip int) bool {
		for i, ml := range mls {
			if i == skip {
				continue
			}
			if ml.NumMembers() != N-btoi(skip >= 0) {
				return false
			}
		}
		return true
	}
	waitFor := func(limit time.Duration, cond func() bool) bool {
		deadline := time.Now().Add(limit)
		for {
			if cond() {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(pi / 50)
		}
	}

	formed := waitFor(600*pi, func() bool { return live(-1) })
	formedAt := time.Since(start)
	time.Sleep(60 * pi)

	snap := func() stats {
		return stats{
			packets:     atomic.LoadUint64(&netw.st.packets),
			packetBytes: atomic.LoadUint64(&netw.st.packetBytes),
			streamMsgs:  atomic.LoadUint64(&netw.st.streamMsgs),
			streamBytes: atomic.LoadUint64(&netw.st.streamBytes),
		}
	}
	s0 := snap()
	t0 := time.Now()
	time.Sleep(30 * pi)
	s1 := snap()
	secs := proto(time.Since(t0)) / 1000
	msgs := float64(s1.packets-s0.packets+s1.streamMsgs-s0.streamMsgs) / float64(N) / secs
	wireBytes := float64(s1.packetBytes-s0.packetBytes+s1.streamBytes-s0.streamBytes) / float64(N) / secs
	payload := float64(s1.packetBytes-s0.packetBytes+s1.streamBytes-s0.streamBytes-
		packetCryptoOverhead*(s1.packets-s0.packets)-
		streamCryptoOverhead*(s1.streamMsgs-s0.streamMsgs)) / float64(N) / secs

	// One update to spread: node 0 changes its metadata, which memberlist
	// sends as a new alive record with a higher incarnation.
	b.mu.Lock()
	b.metaTarget = 0
	b.metaWant = "v1"
	b.metaSeen = make([]time.Time, N)
	b.mu.Unlock()
	dels[0].meta.Store([]byte("v1"))
	t1 := time.Now()
	if err := mls[0].UpdateNode(10 * pi); err != nil {
		fmt.Fprintf(os.Stderr, "memberlist-bench: update: %v\n", err)
	}
	allSeen := func(seen []time.Time, skip int) bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for i := range seen {
			if i != skip && seen[i].IsZero() {
				return false
			}
		}
		return true
	}
	spreadOK := waitFor(60*pi, func() bool { return allSeen(b.metaSeen, 0) })
	var spreadLast time.Time
	b.mu.Lock()
	for i, t := range b.metaSeen {
		if i != 0 && t.After(spreadLast) {
			spreadLast = t
		}
	}
	b.mu.Unlock()
	spread := spreadLast.Sub(t1)
	if !spreadOK {
		spread = time.Since(t1)
	}
	time.Sleep(30 * pi)

	losses := []float64{0, 0.05, 0.10, 0.20}
	var fd [4]uint64
	for i, p := range losses {
		netw.setLoss(p)
		b.mu.Lock()
		before := b.falseDeaths
		b.mu.Unlock()
		time.Sleep(120 * pi)
		b.mu.Lock()
		fd[i] = b.falseDeaths - before
		b.mu.Unlock()
	}
	netw.setLoss(0)
	time.Sleep(60 * pi)

	crashed := 1 % N
	b.mu.Lock()
	b.crashed[crashed] = true
	b.deadTarget = crashed
	b.deadSeen = make([]time.Time, N)
	b.mu.Unlock()
	tc := time.Now()
	trs[crashed].Shutdown() // from now on it neither sends nor receives
	go mls[crashed].Shutdown()
	detOK := waitFor(300*pi, func() bool { return allSeen(b.deadSeen, crashed) })
	var det []float64
	b.mu.Lock()
	for i, t := range b.deadSeen {
		if i != crashed && !t.IsZero() {
			det = append(det, proto(t.Sub(tc)))
		}
	}
	b.mu.Unlock()
	sort.Float64s(det)
	p50, max := 0.0, 0.0
	if len(det) > 0 {
		p50, max = det[len(det)/2], det[len(det)-1]
	}
	close(lag.stop)
	status := "ok"
	if !formed || !spreadOK || !detOK {
		status = "incomplete"
	}
	fmt.Printf("%d\t%.0f\t%.0f\t%.0f\t%.2f\t%.0f\t%d\t%d\t%d\t%d\t%s\t%.0f\t%g\t%.1f\n",
		N, p50, max, proto(spread), msgs, payload, fd[0], fd[1], fd[2], fd[3], status,
		wireBytes, sc, lag.quantile(0.99))
	fmt.Fprintf(os.Stderr, "memberlist N=%d formed after %.1f s wall; packets lost %d, dropped on full queues %d\n",
		N, formedAt.Seconds(), atomic.LoadUint64(&netw.st.lost), atomic.LoadUint64(&netw.st.overflow))
	for i, ml := range mls {
		if i != crashed {
			ml.Shutdown()
		}
	}
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}
