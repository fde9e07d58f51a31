"""Scenario 10: a hostile key holder floods one node (the victim).

Three nodes (n0 the seed, n1 the victim, n2), each in its own namespace; a
process holding the swarm key (tests/tools/hostile_peer) on another host.

Phase 1, dials. It sends the victim 10,000 indirect-probe requests (SWIM
PING_REQ) naming 10,000 distinct unknown members, each at its own address in
10.99.0.0/16 (the victim's namespace has no route there: a dial to one fails
at once and no packet leaves the test's namespaces). A mentioned address is
tried at most once: dials during the flood <= requests + a few, and in the
5 s after it the victim makes at most DIALS_AFTER_MAX dials (a member's
redial, never the mentioned addresses again).

Phase 2, slots. A second such flood (10.98.0.0/16, slower, so that it is
still going) and 300 connections under throwaway identities that hold the
key and never join the view, held open; one the victim closes or refuses
comes back every 250 ms, so the strangers take every slot the victim gives
them (before members had slots kept for them: all 256, each established,
none a handshake the victim could evict for an honest peer). The honest
node starts once the victim refuses them three rounds in a row. During both an honest node on a
fifth host starts with --join to the victim: it is in the victim's view, and
the victim in its, within JOIN_BOUND seconds of its start. Sockets stay
within --max-connections and every throwaway connection the victim did not
hold is counted as refused or evicted (meshd_drops_total, reasons
SLOT_REASONS); phase 1's mentions are each dialled once or counted refused
(meshd_connmgr_mention_dials_total, meshd_connmgr_refused_total).

Throughout both phases, at every sample, the seed and the member stay
connected to the victim and alive at their epochs in its view; at the end
all four are in one view.

The two phases are apart because slots full of strangers also stop the
victim's own dials (each refused, then retried after the longest backoff),
which would hide redials of mentioned addresses."""
import json
import os
import select
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from scenario import PORT, NetMesh, figure  # noqa: E402
import meshtest  # noqa: E402

HOSTILE = os.path.join(meshtest.BUILD, "tests", "hostile_peer")
MAX_CONN = 256          # the victim's --max-connections (the default, made explicit)
THROWAWAY = 300         # connections under throwaway identities: more than the slots
REQUESTS = 10000        # PING_REQs of phase 1, each a distinct unknown member and address
RATE = 5000             # phase 1's requests a second
REQUESTS_2 = 10000      # phase 2's, at RATE_2 a second: 7 s, so the honest node starts in it
RATE_2 = 1500
# The honest node redials its seed with backoff from 100 ms, doubling: five
# attempts fit in about 3 s, and a joining push-pull takes one round trip
# more. 5 s is that, with room for a loaded 2-core CI machine, and the same
# bound the restart scenarios hold; the issue saw no join for 10 s and more
# before members had slots kept for them.
JOIN_BOUND = 5.0
DIALS_AFTER_WINDOW = 5.0
DIALS_AFTER_MAX = 10
# meshd_drops_total reasons for a connection refused or evicted for want of
# a slot (net/transport.h).
SLOT_REASONS = ("conn_limit", "unjoined", "source_limit", "member_reserve")


def tcp_metric(mt, name, **labels):
    return meshtest.metric_sum(mt, name, transport="tcp", **labels)


def delta(a, b, name, **labels):
    return meshtest.metric_sum(b, name, **labels) - meshtest.metric_sum(a, name, **labels)


def connmgr_metrics(mt):
    """The connection manager's own counters, whatever their names."""
    return {k: v for k, v in mt.items() if k.startswith("meshd_connmgr_")}


def read_json_line(proc, timeout):
    """The next line of proc's stdout as JSON, or None after timeout."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        return None
    line = proc.stdout.readline()
    return json.loads(line) if line.strip() else None


def flood_result(test, proc):
    """Waits for a ping-req flood to end; returns its JSON line. The victim
    may have closed the flood's own connection (a stranger holding a slot):
    then fewer requests went out, which is its right."""
    out, err = proc.communicate(timeout=90)
    lines = out.strip().splitlines()
    test.assertTrue(lines, f"the flood printed nothing: {err}")
    sent = json.loads(lines[-1])
    test.assertGreater(sent["sent"], 0, f"the flood never reached the victim: {err}")
    if proc.returncode != 0:
        test.assertGreater(sent["lost_connection"], 0, f"the flood failed: {err}")
    return sent


class KeyHolderFlood(unittest.TestCase):
    def test_flood(self):
        with NetMesh(3, args=["--max-connections", str(MAX_CONN)], extra_hosts=2) as m:
            m.start()
            seed, victim, member = m.nodes
            m.wait_converged(timeout=30)
            epochs = {n.node_id(): n.epoch() for n in m.nodes}
            hh, honest_host = m.extra
            vaddr = f"{m.host_of(victim).ip}:{PORT}"
            hostile = []

            def start_hostile(*args):
                p = subprocess.Popen(["ip", "netns", "exec", hh.ns, HOSTILE, "--psk", m.psk,
                                      "--connect", vaddr] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                hostile.append(p)
                m.procs.append(p)  # killed at exit whatever happens
                return p

            samples = {"n": 0, "max_open": 0, "max_peers": 0}

            def sample():
                """One look at the victim: sockets within bounds, seed and
                member connected and alive at their epochs. Returns its
                metrics."""
                mt = victim.metrics()
                opened = tcp_metric(mt, "meshd_transport_connections_open")
                samples["n"] += 1
                samples["max_open"] = max(samples["max_open"], opened)
                samples["max_peers"] = max(samples["max_peers"],
                                           tcp_metric(mt, "meshd_transport_peers"))
                self.assertLessEqual(opened, MAX_CONN, "sockets over --max-connections")
                members = {x["nodeId"]: x for x in victim.members()}
                for n in (seed, member):
                    e = members.get(n.node_id())
                    self.assertIsNotNone(e, f"{n.name} fell out of the victim's view")
                    self.assertEqual((e["state"], e["epoch"]), ("alive", epochs[n.node_id()]),
                                     f"{n.name} in the victim's view")
                    self.assertIsNotNone(e["transport"], f"the victim lost {n.name}'s connection")
                return mt

            def flood_arrived(since, nbytes):
                """The victim read nbytes more than at `since` (a flood is on)."""
                b0 = tcp_metric(since, "meshd_transport_bytes_total", dir="in")
                return tcp_metric(sample(), "meshd_transport_bytes_total", dir="in") - b0 > nbytes

            def connected(a, b):
                e = {x["nodeId"]: x for x in a.members()}.get(b.node_id())
                return e is not None and e["transport"] is not None

            # The victim learns of the member through the seed: its
            # connection to it comes with the first probe.
            meshtest.wait_until(lambda: all(connected(victim, n) and connected(n, victim)
                                            for n in (seed, member)), 15,
                                "the victim to be connected to the seed and the member")
            try:
                # Phase 1: mentioned addresses are not dialled for ever.
                mt1 = sample()
                t1 = time.monotonic()
                flood1 = start_hostile("--mode", "ping-req-flood", "--count", str(REQUESTS),
                                       "--rate", str(RATE), "--addr-net", "10.99")
                while flood1.poll() is None:
                    sample()
                    time.sleep(0.2)
                sent1 = flood_result(self, flood1)
                flood1_s = time.monotonic() - t1
                mt2 = sample()
                t2 = time.monotonic()
                while time.monotonic() - t2 < DIALS_AFTER_WINDOW:
                    sample()
                    time.sleep(0.2)
                mt3 = sample()

                # Phase 2: slots. The second flood first, so that it has its
                # connection before the throwaway ones arrive.
                flood2 = start_hostile("--mode", "ping-req-flood", "--count", str(REQUESTS_2),
                                       "--rate", str(RATE_2), "--addr-net", "10.98")
                meshtest.wait_until(lambda: flood_arrived(mt3, 20 * 1000), 15,
                                    "the second flood to reach the victim", interval=0.2)
                idle = start_hostile("--mode", "idle-conns", "--count", str(THROWAWAY),
                                     "--hold", "60", "--redial-ms", "250")
                ready = read_json_line(idle, 30)
                self.assertIsNotNone(ready, f"idle-conns never got ready: {idle.poll()}")
                figure("flood2_throwaway_up_at_honest_start", ready["up_now"])
                figure("flood2_throwaway_saturated", int(ready["saturated"]))
                sample()
                honest = meshtest.Node("honest", m.root, f"{honest_host.ip}:{PORT}", [vaddr],
                                       psk=m.psk, netns=honest_host.ns,
                                       args=["--max-connections", str(MAX_CONN)])
                m.nodes.append(honest)  # stopped and reported with the others
                flood_running = flood2.poll() is None and idle.poll() is None
                t0 = time.monotonic()
                honest.start()
                hid = honest.node_id()

                def joined():
                    sample()
                    vs = victim.member_states().get(hid)
                    hs = honest.member_states().get(victim.node_id())
                    return (vs == ("alive", honest.epoch())
                            and hs == ("alive", epochs[victim.node_id()]))
                join_error = None
                try:
                    meshtest.wait_until(joined, JOIN_BOUND, "the honest node to join",
                                        interval=0.1)
                except meshtest.Timeout as e:
                    # Judged at the end, once every figure is printed.
                    join_error = f"{e}; the honest node sees {honest.member_states()}"
                join_s = time.monotonic() - t0
                sent2 = flood_result(self, flood2)
                in_view = [seed, victim, member] + ([honest] if join_error is None else [])
                m.wait_converged(in_view, timeout=10)
                self.assertIsNone(idle.poll(), "the throwaway connections ended early")
                for n in (seed, member):
                    self.assertTrue(connected(n, victim),
                                    f"{n.name} lost its connection to the victim")
                mt4 = sample()
            finally:
                for p in hostile:
                    if p.poll() is None:
                        p.terminate()
                held = None
                if len(hostile) > 2:
                    try:
                        out, _ = hostile[2].communicate(timeout=10)
                        held = json.loads(out.strip().splitlines()[-1])
                    except (subprocess.TimeoutExpired, ValueError, IndexError):
                        pass

            dials_flood = delta(mt1, mt2, "meshd_transport_dials_total", transport="tcp")
            dials_after = delta(mt2, mt3, "meshd_transport_dials_total", transport="tcp")
            fails_flood = delta(mt1, mt2, "meshd_transport_dial_failures_total", transport="tcp")
            fails_after = delta(mt2, mt3, "meshd_transport_dial_failures_total", transport="tcp")
            ping_reqs = delta(mt1, mt2, "meshd_swim_messages_received_total", kind="ping_req")
            slot_drops = {r: delta(mt3, mt4, "meshd_drops_total", transport="tcp", reason=r)
                          for r in SLOT_REASONS}
            accepts = delta(mt3, mt4, "meshd_transport_accepts_total", transport="tcp")
            cm1, cm2, cm4 = connmgr_metrics(mt1), connmgr_metrics(mt2), connmgr_metrics(mt4)
            # Phase 1's mentions, each either dialled once or refused.
            mentions = sum(v - cm1.get(k, 0) for k, v in cm2.items()
                           if k.startswith("meshd_connmgr_mention_dials_total")
                           or k.startswith("meshd_connmgr_refused_total"))
            strangers_end = tcp_metric(mt4, "meshd_transport_peers") - (len(in_view) - 1)

            figure("flood1_requests_sent", sent1["sent"])
            figure("flood1_seconds", flood1_s, "s")
            figure("flood1_ping_req_received", int(ping_reqs))
            figure("flood1_dials_during", int(dials_flood))
            figure("flood1_dial_failures_during", int(fails_flood))
            figure("flood1_dials_5s_after", int(dials_after))
            figure("flood1_dial_failures_5s_after", int(fails_after))
            figure("flood2_requests_sent", sent2["sent"])
            figure("flood2_lost_connection", sent2["lost_connection"])
            figure("flood2_redials", sent2["redials"])
            figure("flood2_honest_join_seconds", join_s if join_error is None else -1, "s")
            figure("flood2_honest_started_during_flood", int(flood_running))
            figure("flood2_throwaway_ever_up", held["ever_up"] if held else -1)
            figure("flood2_throwaway_up_at_end", held["up_now"] if held else -1)
            figure("flood2_throwaway_dials", held["dials"] if held else -1)
            figure("flood2_throwaway_dial_failures", held["dial_failures"] if held else -1)
            figure("flood2_throwaway_downs", held["downs"] if held else -1)
            figure("flood2_accepts", int(accepts))
            for r, v in slot_drops.items():
                figure(f"flood2_slot_drops_{r}", int(v))
            figure("flood1_mentions_dialled_or_refused", int(mentions))
            figure("flood2_strangers_held_at_end", int(strangers_end))
            figure("flood_max_sockets_open", int(samples["max_open"]))
            figure("flood_max_peers_up", int(samples["max_peers"]))
            figure("flood_samples", samples["n"])
            for k, v in sorted(cm4.items()):
                figure(k.replace("{", "[").replace("}", "]").replace('"', ""), v)

            self.assertLessEqual(dials_flood, sent1["sent"] + DIALS_AFTER_MAX,
                                 "a mentioned address was dialled more than once")
            self.assertLessEqual(dials_after, DIALS_AFTER_MAX,
                                 "the victim kept dialling addresses a peer mentioned")
            if cm2:
                self.assertGreaterEqual(mentions, 0.9 * ping_reqs,
                                        "mentions neither dialled nor counted as refused")
            self.assertGreaterEqual(sum(slot_drops.values()), THROWAWAY - ready["up_now"],
                                    "throwaway connections refused or evicted without a count")
            self.assertLessEqual(samples["max_open"], MAX_CONN)
            self.assertTrue(flood_running, "the floods were over before the honest node started")
            self.assertIsNone(join_error, "no slot for an honest node during the flood")


if __name__ == "__main__":
    unittest.main()
