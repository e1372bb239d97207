"""Video suites: VBench's prompts and naming (prompts.py), mp4 files (mp4.py), the run (runner.py), VBench's
own environment (env.py) and the script that runs inside it (vbench_worker.py), VBench's scores (scores.py)."""
