# Seeds N bench users (bench00000...) with login sessions straight into a migrated, empty
# Tertulia SQLite database, and replaces its themes with bench-theme-00..(T-1): the shortcut
# that skips 2 argon2 runs per user (~40 min for 15,000 on this machine). Writes the
# tertulia-bench --users-file. Themes are then set by tertulia-bench over PATCH /api/me.
import hashlib, json, secrets, sqlite3, sys, time
db, n, t, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
now = int(time.time() * 1000)
c = sqlite3.connect(db)
c.execute("PRAGMA foreign_keys = ON")  # the themes' descriptions and follows go with them
c.execute("DELETE FROM themes")
c.executemany("INSERT INTO themes (name, description, created_at) VALUES (?, '', ?)",
              [(f"bench-theme-{i:02}", now) for i in range(t)])
users = []
phc = "$argon2id$v=19$m=19456,t=2,p=1$YmVuY2hzYWx0YmVuY2g$0000000000000000000000000000000000000000000"
for i in range(n):
    nick = f"bench{i:05}"
    cur = c.execute("INSERT INTO users (nickname, password_hash, can_video, can_audio, can_text, role, banned, created_at) VALUES (?, ?, 1, 1, 1, 'user', 0, ?)", (nick, phc, now))
    uid = cur.lastrowid
    token = secrets.token_urlsafe(32)
    c.execute("INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_used_at, user_agent) VALUES (?, ?, ?, ?, ?, 'seed')",
              (hashlib.sha256(token.encode()).hexdigest(), uid, now, now + 30 * 86400000, now))
    users.append({"id": uid, "nickname": nick, "token": token, "themes": []})
c.commit()
json.dump(users, open(out, "w"))
print(f"seeded {n} users, {t} themes")
