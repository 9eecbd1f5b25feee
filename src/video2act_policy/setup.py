from setuptools import setup

package_name = "video2act_policy"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Video2Act maintainers",
    maintainer_email="maintainers@video2act.dev",
    description="Video2Act System 1 node: latents and joint state to joint trajectory chunks.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["policy_node = video2act_policy.node:main"]},
)
