"""Serve the campaign flow as a deployment (a Prefect runner), for the suspend/resume tests.

Usage: python -m tests.helpers.serve_campaign DEPLOYMENT_NAME
"""

from __future__ import annotations

import sys

from paretolab.flows.campaign import run_campaign

if __name__ == "__main__":
    run_campaign.serve(name=sys.argv[1], print_starting_message=False)
