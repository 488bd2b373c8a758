import scheduler as s, sys
s.set_use_nested_tasklets(sys.argv[1] == "nested")
def log(x): print(" ", x)
def nester():
    print("  nester"); a = s.tasklet(log)("n1"); s.tasklet(log)("n2"); a.run(); print("  nester end")
def yielder():
    print("  y1"); s.schedule(); print("  y2")
s.tasklet(log)("t1"); s.tasklet(nester)(); s.tasklet(yielder)(); s.tasklet(log)("t4")
i = 0
while s.getruncount() > 1:
    i += 1; print("run_n_tasklets(1) #%d" % i); s.run_n_tasklets(1)
s.tasklet(log)("a"); s.tasklet(log)("b"); s.tasklet(log)("c")
print("run_n_tasklets(2)"); s.run_n_tasklets(2); print("left", s.getruncount() - 1)
s.run()
