import scheduler as s
def log(x): print(x)
def spawner():
    print("spawner")
    s.tasklet(log)("child")
s.tasklet(log)("a"); s.tasklet(spawner)(); s.tasklet(log)("b")
print(s.getruncount(), s.calculateruncount())
s.run()
print(s.getruncount())
