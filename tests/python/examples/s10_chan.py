import scheduler as s
c = s.channel()
ts = [s.tasklet(c.send)(i) for i in range(3)]; s.run()
print("balance", c.balance, "queue is ts[0]", c.queue is ts[0], "blocked", ts[0].blocked, "scheduled", ts[0].scheduled)
print("recv", c.receive(), "balance", c.balance)
c.close(); print("closing", c.closing, "closed", c.closed)
print("recv", c.receive(), c.receive(), "closed", c.closed)
for op in (c.receive, lambda: c.send(1)):
    try: op()
    except ValueError as e: print("ValueError:", e)
print("iterating a closed channel:", list(c)); c.open(); print("reopened", c.closing, c.closed); s.run()
for i in range(2): s.tasklet(c.send)(i)
s.run(); it = iter(c); print(it is c, next(it), next(it), c.balance)
