from setuptools import find_packages, setup

package_name = "video2act_core"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Video2Act maintainers",
    maintainer_email="maintainers@video2act.dev",
    description="ROS-agnostic Video2Act model, checkpoint and safety core.",
    license="Apache-2.0",
    entry_points={"console_scripts": []},
)
