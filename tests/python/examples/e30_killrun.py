import scheduler as s
def log(x): print(x)
def victim():
    try: s.schedule()
    except s.TaskletExit: print("victim exits"); raise
v = s.tasklet(victim)(); v.run()          # v started, re-queued at the back
s.tasklet(log)("queued after victim")
print("kill"); v.kill(); print("kill returned; runcount", s.getruncount())
