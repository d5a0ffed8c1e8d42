"""lamina.lint"""
