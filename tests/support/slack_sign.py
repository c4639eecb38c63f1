"""Signs a Slack request the way Slack's official SDK does (PyPI `slack_sdk`): reads the raw body
on stdin, prints the `X-Slack-Signature` for SECRET and TIMESTAMP, after checking that the SDK's
own verifier accepts it. Usage: slack_sign.py SECRET TIMESTAMP < body"""

import sys

from slack_sdk.signature import SignatureVerifier

secret, timestamp = sys.argv[1], sys.argv[2]
body = sys.stdin.buffer.read().decode()
verifier = SignatureVerifier(secret)
signature = verifier.generate_signature(timestamp=timestamp, body=body)
# The SDK's verifier checks freshness against the clock; the test signs stale requests too.
assert verifier.is_valid(body=body, timestamp=timestamp, signature=signature) or (
    abs(int(timestamp) - int(__import__("time").time())) > 300
)
print(signature)
