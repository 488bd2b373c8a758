import scheduler as s
c = s.channel()
def rcv(): print("R got", c.receive())
def log(x): print(x)
s.tasklet(rcv)().run()
s.tasklet(log)("A"); s.tasklet(log)("B")
print("main sends (pref -1)"); c.send(1); print("main continues; runcount", s.getruncount())
s.tasklet(rcv)().run(); s.tasklet(log)("C")
c.preference = 0
print("main sends (pref 0)"); c.send(2); print("main continues; runcount", s.getruncount())
s.run()
