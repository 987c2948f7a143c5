"""rulesfile"""
