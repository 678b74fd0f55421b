"""riskstream/ops"""
