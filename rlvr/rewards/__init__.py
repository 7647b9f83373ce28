"""Rewards: functions that score completions, registered by name for specs to combine.

Importing this package imports every module in it, so that each ``@register_reward`` is in
``rlvr.rewards.base.REWARDS``: a new reward family is one new file. The registry and the
weighted sum live in ``rlvr.rewards.base``; a reward that belongs to one task lives in that
task's file and registers when ``rlvr.tasks`` is imported.
"""

from rlvr.discovery import import_submodules

import_submodules(__name__, __path__)
