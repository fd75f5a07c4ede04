"""axe-core in the browser tests: run the accessibility rules on a page and fail on what
matters (issue 24, WCAG 2.1 AA).

axe-core comes from the npm registry and is vendored as a test fixture
(tests/web/vendor/axe-core, its MPL-2.0 licence beside it): the machines that run the
tests reach npm only at set-up, and a fixed version keeps the verdicts the same from run
to run. The page's Content-Security-Policy allows no inline or injected <script>, so the
source is evaluated through the DevTools protocol (`page.evaluate`), which the policy does
not govern; the page itself is not changed to let it in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE_SOURCE = Path(__file__).parent / "web" / "vendor" / "axe-core" / "axe.min.js"
#: The rule sets of WCAG 2.0 and 2.1, levels A and AA, and axe's best practices (which hold
#: the landmark and heading rules the issue names).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
#: The impacts that fail a test; "moderate" and "minor" are reported in the message only
#: when something blocking is there too.
BLOCKING = ("serious", "critical")


def violations(page: Any, context: str | None = None) -> list[dict[str, Any]]:
    """axe's violations on `page` as it is now (on the element `context` if given)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE.read_text(encoding="utf-8") + "\n;undefined")
    result: dict[str, Any] = page.evaluate(
        """async ([context, tags]) => {
            const r = await axe.run(context || document,
                                    {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
            return {violations: r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))
            }))};
        }""",
        [context, TAGS],
    )
    return list(result["violations"])


def describe(found: list[dict[str, Any]]) -> str:
    lines = []
    for v in found:
        lines.append(f"{v['impact']} {v['id']}: {v['help']}")
        for node in v["nodes"][:5]:
            lines.append(f"    {node['target']}: {(node['summary'] or '').splitlines()[-1:]}")
    return "\n".join(lines)


def assert_accessible(page: Any, where: str, context: str | None = None) -> list[dict[str, Any]]:
    """Fail on any serious or critical violation; returns all violations found."""
    found = violations(page, context)
    blocking = [v for v in found if v["impact"] in BLOCKING]
    assert not blocking, f"axe on {where}:\n{describe(found)}"
    return found
