import scheduler as s
def log(x): print(x)
def y():
    print("y start"); s.schedule(); print("y end")
s.tasklet(y)(); s.tasklet(log)("x")
print("main schedule ->", s.schedule())
print("runcount", s.getruncount())
# schedule_remove inside tasklet
def r():
    print("r start"); s.schedule_remove(); print("r end")
t = s.tasklet(r)()
s.run()
print("alive", t.alive, "scheduled", t.scheduled, "paused", t.paused, "runcount", s.getruncount())
t.insert(); s.run()
print("alive", t.alive)
# schedule_remove from main
s.tasklet(log)("q")
print("main schedule_remove ->", s.schedule_remove())
print("runcount", s.getruncount(), s.getcurrent().scheduled)
