"""How a command reaches the controller, and the API path of a service."""

from __future__ import annotations

from controller.cli.errors import fail, wide_console
from controller.client import ControllerClient, ControllerUnavailable, start_controller
from controller.settings import Settings
from controller.spec import check_service_name
from controller.spec.models import SpecProblem


def service_path(name: str, suffix: str = "") -> str:
    """The API path of a service. A name that cannot be a service's is refused here, so no
    argument (`..`, `a?target=controller`, `x/../y`) can steer the request elsewhere."""
    try:
        check_service_name(name)
    except SpecProblem as exc:
        raise fail(f"{exc.message}: {exc.hint}") from None
    return f"/api/v1/services/{name}{suffix}"


def controller_client(start: bool) -> ControllerClient:
    """A client of the running controller; with `start`, one is started when none answers."""
    settings = Settings.from_env()
    client = ControllerClient(settings)
    if client.healthy():
        return client
    if not start:
        raise ControllerUnavailable(
            f"no controller answers at {client.url}; `serve controller start` starts one"
        )
    console = wide_console()
    with console.status("Starting the controller in the background..."):
        url = start_controller(settings)
    console.print(f"Controller started at {url} (logs: {settings.log_dir / 'controller.log'})")
    return ControllerClient(settings, url=url)
