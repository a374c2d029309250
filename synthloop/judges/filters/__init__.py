"""Filters that decide what reaches training; each reports counts in/out and the reason per dropped record.

    from synthloop.judges.filters import NearDedup, run_filters
    report = run_filters(records, [NearDedupConfig(threshold=0.7), RefusalConfig()], out="runs/clean")
"""

from synthloop.judges.filters.base import Dropped, Filter, FilterResult, record_text
from synthloop.judges.filters.decontaminate import Decontaminate, DecontaminateConfig, EvalSet
from synthloop.judges.filters.dedup import ExactDedup, ExactDedupConfig, NearDedup, NearDedupConfig
from synthloop.judges.filters.diversity import Diversity, DiversityConfig, k_center_greedy
from synthloop.judges.filters.pipeline import FilterReport, FilterRunConfig, FilterSpec, build_filter, run_filters
from synthloop.judges.filters.repetition import RepetitionConfig, RepetitionFilter, repetition_share
from synthloop.judges.filters.score import JudgeThreshold, JudgeThresholdConfig
from synthloop.judges.filters.similarity import SimilarityConfig, SimilarityFilter
from synthloop.judges.filters.simple import LengthConfig, LengthFilter, RefusalConfig, RefusalFilter

__all__ = [
    "Decontaminate", "DecontaminateConfig", "Diversity", "DiversityConfig", "Dropped", "EvalSet", "ExactDedup",
    "ExactDedupConfig", "Filter", "FilterReport", "FilterResult", "FilterRunConfig", "FilterSpec", "JudgeThreshold",
    "JudgeThresholdConfig", "LengthConfig", "LengthFilter", "NearDedup", "NearDedupConfig", "RefusalConfig",
    "RefusalFilter", "build_filter", "k_center_greedy", "record_text", "run_filters",
    "RepetitionConfig", "RepetitionFilter", "SimilarityConfig", "SimilarityFilter", "repetition_share",
]
