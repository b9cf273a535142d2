"""Write data/synthetic_chinchilla.csv: runs drawn from the Chinchilla law with known parameters.

The table the README's quick start fits.  Truth: the Besiroglu et al. 2024 estimate
(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658), 0.5% multiplicative noise,
seed 0; 6 model sizes from 20M to 2B parameters, 6 token budgets from 10 to 160
tokens per parameter.  Run:  python examples/make_synthetic.py
"""

from pathlib import Path

import numpy as np

from scalinglaws.data.atomic import write_atomic
from scalinglaws.laws import get_law
from scalinglaws.fitting.synthetic import simulate

TRUTH = get_law("chinchilla").presets["besiroglu2024"].values


def main(path: Path = Path(__file__).resolve().parents[1] / "data" / "synthetic_chinchilla.csv") -> None:
    N = np.geomspace(2e7, 2e9, 6)
    rows = [{"N": round(n), "D": round(n * tpp)} for n in N for tpp in (10, 20, 40, 80, 120, 160)]
    table = simulate("chinchilla", TRUTH, rows, noise=0.005, seed=0)
    table["N"], table["D"] = table["N"].astype("int64"), table["D"].astype("int64")
    table["loss"] = table["loss"].round(5)
    write_atomic(path, table.to_csv(index=False))
    print(f"wrote {path} ({len(table)} runs)")


if __name__ == "__main__":
    main()
