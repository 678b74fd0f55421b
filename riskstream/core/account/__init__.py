"""riskstream/core/account"""
