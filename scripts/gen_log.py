"""Writes a bank event log as export lines (see OPERATING.md, "The export format") to stdout.

Usage: gen_log.py ACCOUNTS EVENTS_PER_ACCOUNT RUN
ACCOUNTS streams of EVENTS_PER_ACCOUNT events each, appended in commit order in interleaved
runs of RUN events per stream (RUN=1: every command of a busy system touching another stream).
Event ids are UUIDv7-shaped (time-ordered), as the runtime's own.
"""
import sys, uuid, json, os
T0=1764000000000
def v7(i):
    ms=T0+i
    r=int.from_bytes(os.urandom(10),'big')
    n=(ms<<80)|(0x7<<76)|((r>>62)&0xfff)<<64|(0b10<<62)|(r&((1<<62)-1))
    return str(uuid.UUID(int=n))

accounts, per, run = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = sys.stdout
pos = 0
for start in range(0, per, run):
    for a in range(accounts):
        for v in range(start + 1, min(start + run, per) + 1):
            pos += 1
            if v == 1:
                et, p = "account_opened", {"owner": f"owner-{a}", "initial_balance": 100}
            else:
                et, p = "money_deposited", {"amount": v, "balance_after": 100 + v}
            cid = str(uuid.uuid4())
            out.write(json.dumps({"event_id": v7(pos), "stream_type": "account", "stream_id": f"acc-{a}",
              "stream_version": v, "global_position": pos, "event_type": et, "event_version": 1, "payload": p,
              "metadata": {"correlation_id": cid, "causation_id": cid}, "recorded_at": "2026-12-03T18:14:43.107853Z"}, separators=(",", ":")) + "\n")
