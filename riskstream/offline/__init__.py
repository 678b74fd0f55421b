"""riskstream/offline"""
