"""The benchmark's echo service: one named request, ``echo.echo``, that returns its parameters.

Run: ``cd bench && PYTHONPATH=. nameko run --config echo.yaml echo_service``
"""

from invoke_centre.kit import Member, serves


class EchoService:
    name = "echo"
    member = Member(version="1.0.0")

    @serves("echo.echo", permission="echo:read", summary="Return the parameters unchanged")
    def echo(self, params):
        return params
