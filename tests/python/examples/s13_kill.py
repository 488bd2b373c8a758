import scheduler as s
c = s.channel()
def victim(name):
    try: c.receive()
    except s.TaskletExit: print(name, "got TaskletExit"); raise
t = s.tasklet(victim)("v1"); t.run()
print("kill ->", t.kill(), "alive", t.alive, "balance", c.balance)
t = s.tasklet(victim)("v2"); t.run()
t.kill(pending=True); print("pending: alive", t.alive, "scheduled", t.scheduled, "balance", c.balance)
s.run(); print("after run: alive", t.alive)
n = s.tasklet(lambda: print("never"))(); n.kill(); print("never-started killed: alive", n.alive, "runcount", s.getruncount())
def stubborn():
    try: s.schedule_remove()
    except s.TaskletExit: print("swallowed")
    print("continues after swallow")
t = s.tasklet(stubborn)(); t.run(); t.kill(); print("alive", t.alive)
def selfkill():
    try: s.getcurrent().kill()
    except s.TaskletExit: print("self kill raises at once"); raise
s.tasklet(selfkill)(); s.run()
ws = [s.tasklet(victim)("c%d" % i) for i in range(2)]; s.run()
print("balance", c.balance); c.clear(); print("after clear", c.balance, [x.alive for x in ws])
