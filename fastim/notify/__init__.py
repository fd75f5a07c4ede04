"""Notifications (issue 20): muted conversations, and Web Push to browsers whose page is
closed (RFC 8030 delivery, RFC 8291 message encryption, RFC 8292 VAPID).

* `Mutes` (mutes.py): mute and unmute a conversation; every device of the user is told.
* `VapidKey` (vapid.py): the server's signing key pair, made on first start, kept 0600.
* `check_endpoint` (endpoints.py): push endpoints are URLs that clients give the server
  to POST to: the guard against server-side request forgery; `PushSession`
  (transport.py) checks the address each push actually connects to (DNS rebinding).
* `Push` (push.py): subscriptions, and the pushes for new messages to recipients with no
  open connection, coalesced, off the event loop.
"""
