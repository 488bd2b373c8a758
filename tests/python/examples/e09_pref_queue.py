import scheduler as s
def trial(pref, sender_first):
    c = s.channel(); c.preference = pref
    out = []
    def snd():
        out.append("S1"); c.send("v"); out.append("S2")
    def rcv():
        out.append("R1"); c.receive(); out.append("R2")
    def other(n): out.append(n)
    if sender_first: s.tasklet(snd)(); s.tasklet(other)("X"); s.tasklet(rcv)(); s.tasklet(other)("Y")
    else: s.tasklet(rcv)(); s.tasklet(other)("X"); s.tasklet(snd)(); s.tasklet(other)("Y")
    s.run()
    print("pref=%2d %s: %s" % (pref, "S,X,R,Y" if sender_first else "R,X,S,Y", " ".join(out)))
for p in (-1, 0, 1):
    for sf in (True, False):
        trial(p, sf)
