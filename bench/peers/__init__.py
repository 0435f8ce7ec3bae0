"""What the token benchmarks compare with: token material and peer apps.

:mod:`peers.material` mints the RS256 access tokens every candidate checks;
:mod:`peers.hello` is the hello-world Flask app that gunicorn serves, with
securityhandler or one of the peer libraries in front, chosen by environment.
"""
