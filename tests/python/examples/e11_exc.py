import scheduler as s
def log(x): print(x)
def bad(): raise ValueError("boom")
s.tasklet(log)("a"); b = s.tasklet(bad)(); s.tasklet(log)("c")
try: s.run()
except ValueError as e: print("caught", repr(e), "runcount", s.getruncount(), "b.alive", b.alive, "b.scheduled", b.scheduled)
s.run()
# exception inside nested tasklet.run propagates to the tasklet that called run
def parent():
    t = s.tasklet(bad)()
    try: t.run()
    except ValueError as e: print("parent caught", e)
s.tasklet(parent)(); s.run()
# TaskletExit is silent
def te(): print("te"); raise s.TaskletExit
s.tasklet(te)(); s.tasklet(log)("after te"); s.run(); print("no error")
print(s.TaskletExit.__mro__, s.TaskletExit.__module__, s.TaskletExit.__name__)
# SystemExit raised inside tasklet?
def se(): raise SystemExit(3)
s.tasklet(se)()
try: s.run()
except SystemExit as e: print("SystemExit propagated", e.code)
