import scheduler as s
def log(x): print(x)
t1 = s.tasklet(log)("First")
t2 = s.tasklet(log)("Second")
print("switch ->", t2.switch(), "runcount", s.getruncount())
# switch to unscheduled bound tasklets (manual scheduling)
ts = [s.tasklet().bind(log, (n,)) for n in ("m1", "m2")]
for t in ts: t.switch()
print("runcount", s.getruncount())
def two(x):
    print("two a", x); s.schedule_remove(); print("two b", x)
t = s.tasklet().bind(two, ("arg",))
t.switch(); print("paused", t.paused, "alive", t.alive, "scheduled", t.scheduled)
t.switch(); print("alive", t.alive)
# switch from a tasklet: caller is paused (not rescheduled)
def target(src):
    print("target: source paused", src.paused, "scheduled", src.scheduled)
def source():
    tt = s.tasklet().bind(target, (s.getcurrent(),))
    tt.switch(); print("source resumed")
src = s.tasklet(source)(); s.tasklet(log)("other")
s.run(); print("source alive", src.alive, "paused", src.paused, "runcount", s.getruncount())
c = s.channel()
b = s.tasklet(c.receive)(); s.run()
try: b.switch()
except RuntimeError as e: print("switch blocked:", e)
c.send(None)
