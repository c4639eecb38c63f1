"""A throwaway Matrix homeserver for hoist's e2e tests: PyPI's `matrix-synapse` on a free
loopback port with SQLite, its rate limits raised, two users (the bot `hoist` and a person
`ana`, and `eve`, a stranger), a room ana created and invited the bot and eve to (eve joined;
the bot has not: hoist joins it), and another room the bot is invited to but not configured for.

Usage:
  matrix_homeserver.py start DIR     runs synapse (in the foreground, until killed) after writing
                                     DIR/matrix.json: {"url", "room", "bot_token", "user_token"}
  matrix_homeserver.py messages DIR  prints the room's m.room.message events, oldest first, as
                                     one JSON array (read with ana's token)
  matrix_homeserver.py say DIR WHO ROOM TEXT
                                     posts TEXT as ana or eve into "room" or "other_room"
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request


def call(url, method="GET", body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(dir):
    port = free_port()
    config = os.path.join(dir, "hs.yaml")
    data = os.path.join(dir, "data")
    subprocess.run(
        [sys.executable, "-m", "synapse.app.homeserver", "--server-name", "localhost",
         "--config-path", config, "--generate-config", "--report-stats=no",
         "--data-directory", data],
        check=True, cwd=dir, stdout=subprocess.DEVNULL,
    )
    lines = open(config).read().splitlines()
    kept = []
    skip = False
    for line in lines:
        # The generated listener and key servers are replaced below (a duplicate key is an error).
        if line.startswith("listeners:") or line.startswith("trusted_key_servers:"):
            skip = True
            continue
        if skip and (line.startswith(" ") or line.startswith("-")):
            continue
        skip = False
        kept.append(line)
    limit = "{per_second: 1000, burst_count: 1000}"
    kept += [
        "listeners:",
        f"  - port: {port}",
        "    tls: false",
        "    type: http",
        "    x_forwarded: false",
        "    bind_addresses: ['127.0.0.1']",
        "    resources:",
        "      - names: [client]",
        "        compress: false",
        "trusted_key_servers: []",
        "suppress_key_server_warning: true",
        f"rc_message: {limit}",
        f"rc_registration: {limit}",
        f"rc_joins: {{local: {limit}, remote: {limit}}}",
        f"rc_joins_per_room: {limit}",
        f"rc_login: {{address: {limit}, account: {limit}, failed_attempts: {limit}}}",
        f"rc_invites: {{per_room: {limit}, per_user: {limit}, per_issuer: {limit}}}",
    ]
    open(config, "w").write("\n".join(kept) + "\n")
    log = open(os.path.join(dir, "synapse.log"), "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "synapse.app.homeserver", "--config-path", config],
        cwd=dir, stdout=log, stderr=log,
    )
    signal.signal(signal.SIGTERM, lambda *_: (server.kill(), sys.exit(0)))
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            call(url + "/_matrix/client/versions")
            break
        except Exception:
            if server.poll() is not None:
                sys.exit("synapse exited; see synapse.log")
            time.sleep(0.05)
    tokens = {}
    for user in ["hoist", "ana", "eve"]:
        subprocess.run(
            ["register_new_matrix_user", "-c", config, "-u", user, "-p", "pw-" + user,
             "--no-admin", url],
            check=True, stdout=subprocess.DEVNULL,
        )
        login = call(url + "/_matrix/client/v3/login", "POST", {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": "pw-" + user,
        })
        tokens[user] = login["access_token"]
    room = call(url + "/_matrix/client/v3/createRoom", "POST",
                {"invite": ["@hoist:localhost", "@eve:localhost"], "name": "releases"},
                tokens["ana"])["room_id"]
    call(f"{url}/_matrix/client/v3/join/{urllib.parse.quote(room, safe='')}", "POST", {},
         tokens["eve"])
    # A second room, not configured for the bot: what is said there is not for it.
    other = call(url + "/_matrix/client/v3/createRoom", "POST",
                 {"invite": ["@hoist:localhost"], "name": "elsewhere"}, tokens["ana"])["room_id"]
    info = {"url": url, "room": room, "other_room": other, "bot_token": tokens["hoist"],
            "user_token": tokens["ana"], "eve_token": tokens["eve"]}
    tmp = os.path.join(dir, "matrix.json.tmp")
    open(tmp, "w").write(json.dumps(info))
    os.rename(tmp, os.path.join(dir, "matrix.json"))
    server.wait()


def say(dir, who, room_key, text):
    """Posts `text` as an m.text of user `who` (ana or eve) into the room `room_key`."""
    info = json.load(open(os.path.join(dir, "matrix.json")))
    token = info["user_token"] if who == "ana" else info["eve_token"]
    room = urllib.parse.quote(info[room_key], safe="")
    txn = str(time.time_ns())
    sent = call(f"{info['url']}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}", "PUT",
                {"msgtype": "m.text", "body": text}, token)
    print(sent["event_id"])


def messages(dir):
    info = json.load(open(os.path.join(dir, "matrix.json")))
    room = urllib.parse.quote(info["room"], safe="")
    page = call(f"{info['url']}/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=100",
                token=info["user_token"])
    events = [e for e in page.get("chunk", []) if e.get("type") == "m.room.message"]
    print(json.dumps(events))


if __name__ == "__main__":
    {"start": start, "messages": messages, "say": say}[sys.argv[1]](*sys.argv[2:])
