"""riskstream/core/steps"""
