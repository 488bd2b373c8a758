"""Player persistence: SQLite owned by one worker thread.

The game never runs a query itself: it sends requests over ``requests`` (a
a channel: the sender waits only until the worker takes it) and, for loads,
waits on its own reply channel; only the asking tasklet waits, never the tick.

Requests:
    ("load", name, reply)      -> reply gets a dict or None
    ("save", [row, ...])       rows are (name, x, y, score, last_seen); one transaction
    ("flush", reply)           -> reply gets the number of rows saved so far
    None                       close the database and end the worker

WAL mode with synchronous=NORMAL: a committed transaction survives the
process being killed (kill -9); the database always opens cleanly, and what
was not yet handed to the worker (at most one save interval) is lost.
"""
import sqlite3

SCHEMA = """CREATE TABLE IF NOT EXISTS players (
    name TEXT PRIMARY KEY,
    x INTEGER NOT NULL,
    y INTEGER NOT NULL,
    score INTEGER NOT NULL,
    last_seen REAL NOT NULL)"""


def open_db(path):
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(SCHEMA)
    return db


def db_worker(path, requests, ready):
    """The worker's main function."""
    import scheduler
    db = open_db(path)
    saved = 0

    def reply(ch, value):
        scheduler.tasklet(ch.send)(value)

    reply(ready, db.execute("SELECT COUNT(*) FROM players").fetchone()[0])
    try:
        while True:
            req = requests.receive()
            if req is None:
                return saved
            op = req[0]
            if op == "load":
                row = db.execute("SELECT x, y, score, last_seen FROM players WHERE name = ?",
                                 (req[1],)).fetchone()
                reply(req[2], None if row is None else
                      {"x": row[0], "y": row[1], "score": row[2], "last_seen": row[3]})
            elif op == "save":
                db.execute("BEGIN")
                db.executemany(
                    "INSERT INTO players(name, x, y, score, last_seen) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET x = excluded.x, y = excluded.y, "
                    "score = excluded.score, last_seen = excluded.last_seen", req[1])
                db.execute("COMMIT")
                saved += len(req[1])
            elif op == "flush":
                reply(req[1], saved)
    finally:
        db.close()
