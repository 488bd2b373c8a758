import scheduler as s
names = {id(s.getmain()): "main"}
nm = lambda t: names.get(id(t), "?")
def scb(prev, nxt): print("  sched", nm(prev), "->", nm(nxt))
print("set ->", s.set_schedule_callback(scb))
def work():
    print("  work start"); s.schedule(); print("  work end")
t = s.tasklet(work)(); names[id(t)] = "t"; s.run()
print("set None ->", s.set_schedule_callback(None) is scb)
def ccb(ch, task, sending, willblock): print("  chan", nm(task), "sending", sending, "will_block", willblock)
s.set_channel_callback(ccb)
c = s.channel()
r = s.tasklet(c.receive)(); names[id(r)] = "r"; s.run(); c.send(1)
try: s.channel().receive()
except RuntimeError as e: print("  then:", e)
s.set_channel_callback(None)
