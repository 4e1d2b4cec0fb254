"""docs/img/probability-view.png: the probability view of the README's T = -0.001 example, in Chromium.

    python -m scripts.view_screenshot [--out docs/img/probability-view.png]

SmolLM2-135M, 24 tokens each: the README's example (T = -0.001, seed 1), two
draws at T = -1 with top-k 40 (seeds 1 and 2) and one at T = 0.8, side by
side, the experiment's under-trained candidates marked, the first token of
the first draw hovered so that its panel shows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import negtemp
from negtemp.experiment import undertrained_candidates
from scripts import browser

PROMPT = "Temperature is a concept"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path("docs") / "img" / "probability-view.png"))
    args = ap.parse_args(argv)
    if browser.missing():
        print(f"view_screenshot: {browser.missing()}", file=sys.stderr)
        return 1
    with negtemp.Model("smollm2-135m") as m:
        example = m.complete(PROMPT, -0.001, seed=1, n_predict=24, n_probs=5)
        cold = m.draws(PROMPT, -1.0, n=2, seed=1, n_predict=24, n_probs=5, top_k=40)
        warm = m.complete(PROMPT, 0.8, seed=1, n_predict=24, n_probs=5)
        page = negtemp.render_html([example, *cold, warm], prompt=PROMPT, model=m.path.name,
                                   undertrained=undertrained_candidates(m))
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "view.html"
        html.write_text(page, encoding="utf-8")
        driver = browser.chromium(1400, 760)
        try:
            driver.get(html.as_uri())
            ActionChains(driver).move_to_element(driver.find_elements(By.CSS_SELECTOR, ".tok")[0]).perform()
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
