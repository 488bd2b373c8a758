import scheduler as s
def log(x): print(x)
box = {}
def source():
    print("source start"); box["tgt"].switch(); print("source resumed")
src = s.tasklet(source)()
box["tgt"] = s.tasklet(log)("T")
s.tasklet(log)("D")
s.run(); print("runcount", s.getruncount(), "src alive", src.alive)
