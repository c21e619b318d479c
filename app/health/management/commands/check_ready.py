"""Run the /readyz checks from the shell: one line per check, exit status 1 when any fails.

The installer runs it before migrate and collectstatic, so a missing bucket or an unreachable
database stops a deploy with the reason instead of a traceback halfway through.
"""

from django.core.management.base import BaseCommand, CommandError

from health.checks import CHECKS, run_checks


class Command(BaseCommand):
    help = "Run the readiness checks (all, or the ones named); fail if any fails."

    def add_arguments(self, parser) -> None:
        parser.add_argument("names", nargs="*", metavar="check", help=f"of {', '.join(CHECKS)}")

    def handle(self, *args, names: list[str], **options) -> None:
        unknown = [name for name in names if name not in CHECKS]
        if unknown:
            raise CommandError(
                f"Unknown check {', '.join(unknown)}: use any of {', '.join(CHECKS)}."
            )
        results = run_checks(names)
        for name, result in results.items():
            self.stdout.write(f"{name}: {result}")
        failed = [name for name, result in results.items() if result != "ok"]
        if failed:
            raise CommandError(f"Not ready: {', '.join(failed)}.")
