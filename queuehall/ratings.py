"""The rating catalogue (好差评, docs/evaluation.md): the five official levels and the indicators a low rating
names, each a :class:`~queuehall.text.Bi`. The one list the broker (which checks and records a rating), the
counter's evaluator screen and the web gateway's rating form all use.

Pure Python (core layer).
"""

from __future__ import annotations

from queuehall.text import Bi

# The five official levels, best first.
RATING_LEVELS: dict[int, Bi] = {
    5: Bi("非常满意", "Very satisfied"),
    4: Bi("满意", "Satisfied"),
    3: Bi("基本满意", "Fairly satisfied"),
    2: Bi("不满意", "Dissatisfied"),
    1: Bi("非常不满意", "Very dissatisfied"),
}
LOW_LEVELS = frozenset({1, 2})  # 差评: each opens a follow-up case, and the citizen is asked which part
GOOD_LEVELS = frozenset({3, 4, 5})  # 好评 in the 好评率 (docs/evaluation.md)
# The offline indicators (评价指标) a low rating names, as the citizen reads them.
RATING_INDICATORS: dict[str, Bi] = {
    "efficiency": Bi("服务效率", "Efficiency"),
    "level": Bi("服务水平", "Competence"),
    "attitude": Bi("服务态度", "Attitude"),
    "overall": Bi("整体满意度", "Overall"),
}
