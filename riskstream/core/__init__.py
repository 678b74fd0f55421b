"""riskstream/core"""
