import scheduler as s, sys
s.set_use_nested_tasklets(sys.argv[1] == "nested")
def log(x): print(x)
def spawner():
    print("spawner")
    s.tasklet(log)("child")
def yielder():
    print("y1"); s.schedule(); print("y2")
t1 = s.tasklet(log)("a"); t2 = s.tasklet(spawner)(); t3 = s.tasklet(yielder)(); t4 = s.tasklet(log)("b")
t2.run()
print("after t2.run: runcount", s.getruncount(), "t1.scheduled", t1.scheduled)
s.run()
print("end", s.getruncount())
